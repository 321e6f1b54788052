"""A guest's console output in a file of capped size: what it printed last, never more than ``2 * MAX_BYTES``.

The console is the guest's to write (its kernel messages, its getty, anything its root echoes to
/dev/console), and the file is on the host's disk: a guest printing without end must not fill it. A thread
reads nspawn's output from a pipe and writes it to ``path``; at ``MAX_BYTES`` the file becomes ``path.1``
(replacing the one before) and a new one starts.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

MAX_BYTES = 1 << 20
CHUNK = 1 << 16


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def capture(path: Path, max_bytes: int = MAX_BYTES) -> int:
    """Start a thread that copies what is written to the returned pipe end into ``path``, capped and rotated;
    the thread ends when every copy of the write end is closed (pass it to the child, then close it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    threading.Thread(target=_copy, args=(read_end, path, max_bytes), name=f"console-{path.stem}", daemon=True).start()
    return write_end


def _copy(read_end: int, path: Path, max_bytes: int) -> None:
    out = open(path, "ab")
    try:
        while chunk := os.read(read_end, CHUNK):
            if out.tell() + len(chunk) > max_bytes and out.tell() > 0:
                out.close()
                os.replace(path, rotated(path))
                out = open(path, "ab")
            out.write(chunk[-max_bytes:])
            out.flush()
    finally:
        out.close()
        os.close(read_end)
