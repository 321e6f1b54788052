"""Idempotent playbooks: YAML data rendered with Jinja2, applied through a command runner.

As in pyinfra and Ansible, every operation looks at the host first (``creates``, ``unless``,
or a file's content, mode and owner) and acts only when it differs, so a second run changes
nothing. Playbooks are data (``playbooks/`` at the top of the repository); OS and package-source
differences live in its ``os/`` and ``sources/``, never in this module.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import jinja2
import yaml
from invoke.exceptions import CommandTimedOut

from .. import profiles
from ..data import playbooks_dir
from ..errors import ImagekitError

if TYPE_CHECKING:
    from fabric import Connection

STEP_TIMEOUT = 1800.0
GUARD_TIMEOUT = 120.0
TAIL_LINES = 40

Runner = Callable[[str, float], tuple[int, str]]

_COMMON_KEYS = {"name", "then", "timeout"}
_KEYS = {"run": _COMMON_KEYS | {"run", "creates", "unless"},
         "file": _COMMON_KEYS | {"file", "content", "mode", "owner", "group"}}


class PlaybookError(ImagekitError):
    """A playbook that cannot be loaded, or an operation that failed; the message says which and why."""


@dataclass(frozen=True)
class Operation:
    name: str
    run: str | None = None
    creates: str | None = None
    unless: str | None = None
    file: str | None = None
    content: str = ""
    mode: str = "0644"
    owner: str = "root"
    group: str | None = None
    then: str | None = None
    timeout: float = STEP_TIMEOUT


@dataclass(frozen=True)
class Playbook:
    name: str
    steps: list[Operation]
    expect: dict[str, Any]  # what the checks expect of a host of the profile (free-form: the playbook's data)
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    name: str
    changed: bool
    seconds: float
    output: str


def load(profile: str, variables: dict[str, Any], root: Path | None = None) -> Playbook:
    """Render ``<profile>.yml`` with ``variables`` over the data of its OS and package-source files."""
    root = Path(root or playbooks_dir())
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    # The profile's host data (its user, unit, ports: playbooks/profiles/<profile>.yml) as ``host``, when it has any.
    host = profiles.load(profile, root).data() if profiles.exists(profile, root) else {}
    context = {"profile": profile, "host": host, **variables}
    os_data = _render(env, _choose(root, "os", context.get("os"), "os"), context)
    source_data = _render(env, _choose(root, "sources", context.get("package_source"), "package_source"),
                          {**os_data, **context})
    book = _render(env, _choose(root, "", profile, "profile"), {**os_data, **source_data, **context})
    where = f"{profile}.yml"
    raw_steps, expect, environment = book.get("steps"), book.get("expect", {}), book.get("environment", {})
    if not isinstance(raw_steps, list) or not isinstance(expect, dict) or not isinstance(environment, dict):
        raise PlaybookError(f"{where}: needs `steps:` (a list); `expect:` and `environment:` must be mappings")
    steps = [_step(raw, where) for raw in raw_steps]
    names = [s.name for s in steps]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise PlaybookError(f"{where}: step names must be unique; repeated: {', '.join(dupes)}")
    if host:  # the checks read what a host of the profile has (its unit, user, paths)
        expect = {"host": host, **expect}
    return Playbook(profile, steps, expect, {str(k): str(v) for k, v in environment.items()})


def run(playbook: Playbook, runner: Runner, progress: Callable[[str], None] | None = None) -> list[StepResult]:
    """Apply every step in order; the first failing step raises PlaybookError."""
    host = _Host(runner, playbook.environment)
    results: list[StepResult] = []
    for step in playbook.steps:
        start = time.monotonic()
        try:
            changed, output = _apply(step, host)
        except PlaybookError:
            _report(progress, "failed", step.name, time.monotonic() - start)
            raise
        results.append(StepResult(step.name, changed, time.monotonic() - start, output))
        _report(progress, "changed" if changed else "ok", step.name, results[-1].seconds)
    return results


def fabric_runner(conn: Connection) -> Runner:
    """Run playbook commands over a fabric Connection, as its user (root on builders)."""

    def runner(cmd: str, timeout: float) -> tuple[int, str]:
        try:
            result = conn.run(cmd, hide=True, warn=True, timeout=timeout, in_stream=False)
        except CommandTimedOut as exc:
            return 124, f"{exc.result.stdout}{exc.result.stderr}\n(timed out after {timeout:.0f} s)"
        return result.exited, result.stdout + result.stderr

    return runner


def _choose(root: Path, folder: str, name: str | None, what: str) -> str:
    valid = sorted(p.stem for p in (root / folder).glob("*.yml"))
    if name not in valid:
        raise PlaybookError(f"unknown {what} {name!r}; valid: {', '.join(valid) or f'none in {root / folder}'}")
    return f"{folder}/{name}.yml" if folder else f"{name}.yml"


def _render(env: jinja2.Environment, template: str, context: dict[str, Any]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(env.get_template(template).render(context))
    except jinja2.TemplateError as exc:
        raise PlaybookError(f"{template}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{template} is not valid YAML once rendered: {exc}") from exc
    if not isinstance(data, dict):
        raise PlaybookError(f"{template}: expected a mapping at the top level")
    return data


def _step(raw: Any, where: str) -> Operation:
    """A step as the YAML has it (any value: checked here)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise PlaybookError(f"{where}: every step needs a `name:`; got {raw!r}")
    name = raw["name"]
    kinds = [k for k in _KEYS if k in raw]
    if len(kinds) != 1:
        raise PlaybookError(f"{where}: step {name!r} needs exactly one of `run:` or `file:`")
    if unknown := sorted(set(raw) - _KEYS[kinds[0]]):
        raise PlaybookError(f"{where}: step {name!r} has unknown keys: {', '.join(unknown)}")
    if kinds == ["run"] and not (raw.get("creates") or raw.get("unless")):
        raise PlaybookError(f"{where}: run step {name!r} needs a guard (`creates: PATH` or `unless: CMD`) "
                            "so that a second run changes nothing")
    if kinds == ["file"]:
        if not isinstance(raw.get("content"), str):
            raise PlaybookError(f"{where}: file step {name!r} needs `content:` (a string)")
        mode = raw.get("mode", "0644")
        if not (isinstance(mode, str) and re.fullmatch(r"[0-7]{3,4}", mode)):
            raise PlaybookError(f"{where}: file step {name!r}: `mode:` must be a quoted octal string like '0644'")
    try:
        return Operation(**{**raw, "timeout": float(raw.get("timeout", STEP_TIMEOUT))})
    except (TypeError, ValueError) as exc:
        raise PlaybookError(f"{where}: step {name!r}: {exc}") from exc


class _Host:
    """Commands on the target: bash with the playbook's environment, output merged into stdout."""

    def __init__(self, runner: Runner, environment: dict[str, str]):
        self.runner = runner
        self.env = [shlex.quote(f"{k}={v}") for k, v in environment.items()]

    def sh(self, script: str, timeout: float = GUARD_TIMEOUT, strict: bool = False) -> tuple[int, str]:
        """Guards run as written; steps (``strict``) stop at their first failing command."""
        script = "set -eu\n" + script if strict else script
        return self.runner(" ".join(["env", *self.env, "bash", "-c", shlex.quote(script), "2>&1"]), timeout)

    def must(self, script: str, timeout: float, what: str) -> str:
        code, output = self.sh(script, timeout, strict=True)
        if code != 0:
            tail = "\n".join(output.rstrip().splitlines()[-TAIL_LINES:])
            raise PlaybookError(f"step {what!r} failed (exit {code}); last lines of its output:\n{tail}")
        return output


def _apply(step: Operation, host: _Host) -> tuple[bool, str]:
    if step.file is not None:
        if not _file_differs(step, step.file, host):
            return False, ""
        output = host.must(_write_file(step, step.file), step.timeout, step.name)
    else:
        assert step.run is not None, "load() gives every step one of run: and file:"
        if step.creates and host.sh(f"test -e {shlex.quote(step.creates)}")[0] == 0:
            return False, ""
        if step.unless and host.sh(step.unless)[0] == 0:
            return False, ""
        output = host.must(step.run, step.timeout, step.name)
    if step.then:
        output += host.must(step.then, step.timeout, f"{step.name} (then)")
    return True, output


def _file_differs(step: Operation, file: str, host: _Host) -> bool:
    path = shlex.quote(file)
    code, out = host.sh(f"stat -c '%a %U %G' {path} && sha256sum {path}")
    want = [f"{int(step.mode, 8):o}", step.owner, step.group or step.owner,
            hashlib.sha256(step.content.encode()).hexdigest()]
    return code != 0 or out.split()[:4] != want


def _write_file(step: Operation, file: str) -> str:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path = shlex.quote(file)
    payload = base64.b64encode(step.content.encode()).decode()
    return "\n".join([
        f'mkdir -p "$(dirname {path})"',
        f"tmp=$(mktemp {path}.XXXXXX)",
        "trap 'rm -f \"$tmp\"' EXIT",
        f'printf %s {payload} | base64 -d > "$tmp"',
        f'chown {shlex.quote(step.owner)}:{shlex.quote(step.group or step.owner)} "$tmp"',
        f'chmod {step.mode} "$tmp"',
        f'mv -f "$tmp" {path}',
    ])


def _report(progress: Callable[[str], None] | None, status: str, name: str, seconds: float) -> None:
    if progress is not None:
        progress(f"  {'[' + status + ']':<12}{name} ({seconds:.1f} s)")
