"""Files into and out of a job's host over SFTP.

In: the operator's work directory, modes kept, checked (size, symlinks) before anything is created.
Out: what the command left in ``outputs/``, from a host that ran untrusted code. Every name and link
the host reports is checked; files are written only below a staging directory made for this job,
through directory handles that never follow a link; links are made last and only when they stay
inside; limits cap what is read (bytes, and entries while they are listed). On any refusal the staging
directory goes, so nothing is written (neither outside ``--outputs`` nor half inside it)."""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NotRequired, TypedDict

import paramiko

from ..errors import HostError, InputError

MAX_ENTRIES = 10_000
CHUNK = 256 * 1024


class OutputRefused(HostError):
    """The job's outputs broke a rule; nothing of them was kept."""


class Fetched(TypedDict):
    """What a job's outputs/ held, as fetched (a job's ``outputs`` in ``run``'s result)."""

    files: int
    bytes: int
    links: int
    skipped: list[str]  # fifos, sockets, devices: nothing to copy
    path: NotRequired[str]  # where they landed


@dataclass
class Tree:
    """A checked local directory: (relative path, kind, mode, link target) in upload order."""

    root: Path
    entries: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    size: int = 0


def scan_workdir(root: Path, limit: int) -> Tree:
    """The work directory to upload; InputError for a missing directory, a link leaving it, or too much."""
    if not root.is_dir():
        raise InputError(f"--workdir {root}: not a directory")
    tree = Tree(root)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path, rel = here / name, (here / name).relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                if not _inside(rel, target):
                    raise InputError(f"--workdir {root}: {rel} links outside the directory ({target}); copy what "
                                     "it points to into the directory instead")
                tree.entries.append((rel, "link", 0, target))
            elif stat.S_ISDIR(st.st_mode):
                tree.entries.append((rel, "dir", stat.S_IMODE(st.st_mode), None))
            elif stat.S_ISREG(st.st_mode):
                tree.entries.append((rel, "file", stat.S_IMODE(st.st_mode), None))
                tree.size += st.st_size
            else:
                raise InputError(f"--workdir {root}: {rel} is neither a file, a directory nor a link")
            if tree.size > limit:
                raise InputError(f"--workdir {root} holds over {limit // 2**20} MiB: raise --max-upload-mb or "
                                 "trim the directory")
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    if len(tree.entries) > MAX_ENTRIES:
        raise InputError(f"--workdir {root} holds {len(tree.entries)} entries (at most {MAX_ENTRIES}): pack it")
    return tree


def upload(sftp: paramiko.SFTPClient, tree: Tree, remote: str) -> None:
    """Copy ``tree`` below ``remote`` (an existing directory); set-id bits are not carried over."""
    for rel, kind, mode, target in tree.entries:
        dest = f"{remote}/{rel}"
        if kind == "dir":
            sftp.mkdir(dest, mode & 0o777)
        elif kind == "file":
            sftp.put(str(tree.root / rel), dest, confirm=True)
            sftp.chmod(dest, mode & 0o777)
        else:
            assert target is not None, "a link's entry has its target (scan_workdir)"
            sftp.symlink(target, dest)


def download(sftp: paramiko.SFTPClient, remote: str, dest: Path, limit: int) -> Fetched:
    """Fetch ``remote`` (the job's outputs/) into ``dest`` (which must not exist yet); what was fetched."""
    try:
        top = sftp.lstat(remote)
    except FileNotFoundError:
        top = None
    if top is not None and not stat.S_ISDIR(top.st_mode or 0):  # a host may leave the mode out
        raise OutputRefused("outputs/ is not a directory on the host (a link?): refused, nothing fetched")
    staging = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    os.mkdir(staging, 0o700)
    fetch = _Fetch(sftp, limit)
    try:
        if top is not None:
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fetch.directory(remote, "", fd)
                for rel, target in fetch.links:  # last: no file is ever written through a link made here
                    parent, name = posixpath.split(rel)
                    pfd = _open_dir(fd, parent)
                    try:
                        os.symlink(target, name, dir_fd=pfd)
                    finally:
                        os.close(pfd)
            finally:
                os.close(fd)
        os.chmod(staging, 0o755)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"files": fetch.files, "bytes": fetch.bytes, "links": len(fetch.links), "skipped": fetch.skipped}


class _Fetch:
    def __init__(self, sftp: paramiko.SFTPClient, limit: int):
        self.sftp, self.limit = sftp, limit
        self.files = self.bytes = self.entries = 0
        self.links: list[tuple[str, str]] = []
        self.skipped: list[str] = []

    def listing(self, remote: str) -> list[paramiko.SFTPAttributes]:
        """``remote``'s entries, read as the host sends them with the entry limit enforced on the way: a directory
        of millions of files costs at most the limit, in memory and in time. Each directory is listed whole before
        anything else is asked: paramiko's read-ahead answers would otherwise go to the next request."""
        found = []
        for attr in self.sftp.listdir_iter(remote):
            name = attr.filename
            if not name or name in (".", "..") or "/" in name or "\0" in name:
                raise OutputRefused(f"outputs/: the host reported an entry named {name!r}: refused, nothing kept")
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                raise OutputRefused(f"outputs/ holds over {MAX_ENTRIES} entries: refused, nothing kept (pack them)")
            found.append(attr)
        return found

    def directory(self, remote: str, rel: str, fd: int) -> None:
        for attr in self.listing(remote):
            name = attr.filename
            path, sub = f"{remote}/{name}", f"{rel}/{name}" if rel else name
            mode = attr.st_mode or 0
            if stat.S_ISLNK(mode):
                target = self.sftp.readlink(path) or ""
                if not _inside(sub, target):
                    raise OutputRefused(f"outputs/{sub} links outside outputs/ ({target}): refused, nothing kept")
                self.links.append((sub, target))
            elif stat.S_ISDIR(mode):
                os.mkdir(name, 0o755, dir_fd=fd)
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                try:
                    self.directory(path, sub, child)
                finally:
                    os.close(child)
            elif stat.S_ISREG(mode):
                self.file(path, sub, name, fd, stat.S_IMODE(mode))
            else:
                self.skipped.append(sub)  # a fifo, socket or device: nothing to copy

    def file(self, path: str, sub: str, name: str, fd: int, mode: int) -> None:
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, (mode & 0o755) | 0o600, dir_fd=fd)
        with os.fdopen(out, "wb") as local, self.sftp.open(path, "rb") as remote:
            while chunk := remote.read(CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limit:
                    raise OutputRefused(f"outputs/ is over {self.limit // 2**20} MiB (at {sub}): refused, nothing "
                                        "kept; raise --max-output-mb or write less")
                local.write(chunk)
        self.files += 1


def _open_dir(fd: int, rel: str) -> int:
    """A handle on ``rel`` below ``fd``, one component at a time, never through a link."""
    current = os.dup(fd)
    for part in [p for p in rel.split("/") if p]:
        nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
        os.close(current)
        current = nxt
    return current


def _inside(rel: str, target: str) -> bool:
    """Whether a link at ``rel`` pointing to ``target`` stays inside the tree it is in. ``..`` only leads
    (it then climbs real directories): after a link that points up (``a -> .``), ``a/..`` would climb
    further than the text says."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    parts = [p for p in target.split("/") if p not in ("", ".")]
    while parts and parts[0] == "..":
        parts.pop(0)
    if ".." in parts:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved != ".." and not resolved.startswith("../")
