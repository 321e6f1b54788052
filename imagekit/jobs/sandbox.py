"""A job's command runs under the same sandbox as the profile's agent: the properties are read from the
agent unit the profile's playbook installs (one definition), and passed to ``systemd-run`` for a
transient unit. Only what says what runs, as whom and where is left out; the job sets its own."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ..host.playbook import Playbook, PlaybookError

# The unit's own business, not its confinement: the job sets user, directory, environment and command.
NOT_SANDBOX = {"Type", "User", "Group", "WorkingDirectory", "EnvironmentFile", "Environment", "ExecStart",
               "ExecStartPre", "ExecStartPost", "Restart", "RestartSec", "StandardOutput", "StandardError",
               "SyslogIdentifier", "ReadWritePaths"}


def properties(book: Playbook, unit_file: str) -> list[tuple[str, str]]:
    """The [Service] settings of the profile's service unit (``unit_file``) that confine it, in order (repeats
    kept)."""
    unit = next((op for op in book.steps if op.file == unit_file), None)
    if unit is None:
        raise PlaybookError(f"profile {book.name!r} installs no {unit_file}: a job needs its sandbox")
    found, section = [], ""
    for line in unit.content.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, sep, value = line.partition("=")
        if section == "[Service]" and sep and key.strip() not in NOT_SANDBOX:
            found.append((key.strip(), value.strip()))
    return found


def command(unit: str, user: str, workdir: str, env_file: str | None, env: dict[str, str],
            sandbox: Sequence[tuple[str, str]], timeout: float, kill_after: float, argv: list[str]) -> str:
    """The shell line that runs ``argv`` in a transient unit, its output piped back over SSH and its exit
    status returned. ``timeout(1)`` inside gives 124 on timeout, as operators know it; RuntimeMaxSec is the
    backstop should it be killed."""
    props = [("User", user), ("Group", user), ("WorkingDirectory", workdir), ("ReadWritePaths", workdir),
             ("RuntimeMaxSec", str(int(timeout + kill_after + 30))), *sandbox]
    if env_file:
        props.append(("EnvironmentFile", env_file))
    args = ["systemd-run", f"--unit={unit}", "--pipe", "--wait", "--quiet", "--collect", "--service-type=exec"]
    args += [f"--property={k}={v}" for k, v in props]
    args += [f"--setenv={k}={v}" for k, v in env.items()]
    args += ["--", "/usr/bin/timeout", f"--kill-after={kill_after:g}", f"{timeout:g}", *argv]
    return shlex.join(args) + " </dev/null"
