"""Secrets for agents and jobs: read from a dotenv file on the operator's machine, carried over SSH
into a root-only file on the host that systemd reads as an ``EnvironmentFile`` (so the values reach
the process's environment and nothing else). Never in user data (Hetzner's metadata service serves it
to any process on the host for the server's whole life), the snapshot, logs, command lines or output:
errors name the file, the line and the key, never a value."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .errors import HostError, InputError
from .host import ssh

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOUBLE_QUOTED_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "$": "$"}
MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Secrets:
    values: dict[str, str] = field(default_factory=dict, repr=False)  # never in a repr, a log or a traceback

    def __bool__(self) -> bool:
        return bool(self.values)

    def environment_file(self) -> bytes:
        """systemd's EnvironmentFile syntax: every value double-quoted, its quotes and backslashes escaped."""
        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'
        return "".join(f"{k}={quoted(v)}\n" for k, v in self.values.items()).encode()


def load(path: Path | str | None) -> Secrets:
    """The secrets of a dotenv file (``KEY=VALUE``, ``export KEY=VALUE``, ``#`` comments, single or double
    quotes); an empty Secrets without a file."""
    if path is None:
        return Secrets()
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"--secrets-file {path} is over {MAX_BYTES // 1024} KiB: is it the right file?")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --secrets-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, raw = stripped.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise InputError(f"--secrets-file {path}, line {number}: expected KEY=VALUE with a name of letters, "
                             "digits and '_' (the line is not shown: it may hold a secret)")
        try:
            values[key] = _value(raw.strip())
        except ValueError as exc:
            raise InputError(f"--secrets-file {path}, line {number} ({key}): {exc}") from None
    return Secrets(values)


def _value(raw: str) -> str:
    if raw[:1] == "'":
        if len(raw) < 2 or not raw.endswith("'"):
            raise ValueError("the single quote is not closed on its line")
        return raw[1:-1]
    if raw[:1] == '"':
        out, i = [], 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                i += 1
                out.append(_DOUBLE_QUOTED_ESCAPES.get(raw[i], "\\" + raw[i]))
            else:
                out.append(raw[i])
            i += 1
        if i >= len(raw) or raw[i + 1:].strip() and not raw[i + 1:].strip().startswith("#"):
            raise ValueError("the double quote is not closed on its line, or text follows it")
        return "".join(out)
    return raw.split(" #", 1)[0].rstrip()  # unquoted: an inline comment needs a space before '#'


def install(conn: paramiko.SSHClient, path: str, secrets: Secrets, owner: str = "root") -> None:
    """Write the environment file on the host, 0600 from its first byte, over the SSH channel."""
    write(conn, path, secrets.environment_file(), owner)


def write(conn: paramiko.SSHClient, path: str, content: bytes, owner: str = "root") -> None:
    """An environment file's bytes as they are (a roll carries a host's file to its replacement)."""
    directory = path.rsplit("/", 1)[0]
    code, out, err = ssh.run(conn, f"umask 077 && mkdir -p {directory} && cat > {path}.new && "
                                   f"chown {owner}: {path}.new && mv {path}.new {path}",
                             stdin=content, timeout=60)
    if code != 0:
        raise HostError(f"writing the secrets to {path} failed (exit {code}): {(out + err).strip()[-300:]}")


def read(conn: paramiko.SSHClient, path: str) -> bytes | None:
    """The environment file on a host, or None when it has none (errors never show its content)."""
    code, out, err = ssh.run(conn, f"if [ -e {path} ]; then base64 -w0 {path}; else echo none; fi", timeout=60)
    if code != 0:
        raise HostError(f"reading {path} failed (exit {code}): {err.strip()[-300:]}")
    return None if out.strip() == "none" else base64.b64decode(out)
