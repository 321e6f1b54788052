"""One API process per local cloud: it holds an exclusive lock on ``<state>/api.lock`` for its whole life.

A second ``up`` (or a second ``python -m localcloud``) while the first process lives, even while it still
builds its image and has not answered yet, must not start another API, whose start would kill and boot again
every guest of the first (``Cloud.resume``). The kernel drops the lock when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import time
from typing import IO

from .paths import Layout

ALREADY_RUNNING = 75  # the exit status of an API process that found the lock taken (EX_TEMPFAIL)


class AlreadyRunning(RuntimeError):
    pass


def hold(layout: Layout, wait: float = 2.0) -> IO:
    """Take the lock for this process's life: keep the returned file open. AlreadyRunning if another holds it
    for longer than ``wait`` seconds (``held`` takes it for an instant to look)."""
    lock = open(layout.lock_file, "a")  # not inherited by child processes (PEP 446): guests never hold it
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() >= deadline:
                lock.close()
                raise AlreadyRunning(f"another API process of this local cloud holds {layout.lock_file}") from None
            time.sleep(0.05)


def held(layout: Layout) -> bool:
    """Whether an API process of this local cloud lives (starting or serving)."""
    if not layout.lock_file.exists():
        return False
    try:
        hold(layout, wait=0).close()
    except AlreadyRunning:
        return True
    return False
