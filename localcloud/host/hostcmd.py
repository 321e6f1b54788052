"""Running host commands with errors that say which command failed and why."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

log = logging.getLogger("localcloud")


class HostCommandError(RuntimeError):
    pass


def run(cmd: Sequence[str], *, check: bool = True, timeout: float | None = 600, **kw) -> subprocess.CompletedProcess:
    log.debug("host: %s", " ".join(cmd))
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise HostCommandError(
            f"`{' '.join(cmd)}` failed with exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return proc
