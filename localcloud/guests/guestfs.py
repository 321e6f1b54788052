"""Writing into a guest's disk from the host without following the guest's symlinks.

The host runs as root and a disk's content is the guest's (a snapshot may come from anyone):
``<disk>/var/lib/cloud/seed/nocloud`` may be a symlink to ``/etc/cron.d``. Every component is
opened relative to its parent with ``O_NOFOLLOW``; a symlink or file where a directory belongs
is the guest's own entry and is replaced, never followed. Call it only while the guest is off.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def write_files(root: Path, rel_dir: str, files: dict[str, tuple[str, int]]) -> None:
    """Create ``root/rel_dir`` as real directories and write ``files`` (name -> (text, mode)) into it."""
    fd = _open_dir(root, rel_dir)
    try:
        for name, (text, mode) in files.items():
            _remove(fd, name)
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd)
            with os.fdopen(out, "w") as fh:
                os.fchmod(fh.fileno(), mode)
                fh.write(text)
    finally:
        os.close(fd)


def _open_dir(root: Path, rel_dir: str) -> int:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in Path(rel_dir).parts:
            if name in ("/", ".", ".."):
                raise ValueError(f"{rel_dir!r} must be a plain relative path")
            try:
                child = os.open(name, _DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    raise
                _remove(fd, name)
                os.mkdir(name, 0o755, dir_fd=fd)
                child = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _remove(dir_fd: int, name: str) -> None:
    """Remove the entry ``name`` (file, symlink or directory tree) without following it."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dir_fd)
