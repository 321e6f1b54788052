"""An agent bundle (``--agent-bundle DIR|FILE.tar.gz``), checked whole before any cloud call and packed once.

A bundle may be hundreds of MB (a Node.js agent with its ``node_modules``): it is never held in memory. A
directory is packed (reproducibly) into an anonymous temporary file, which the kernel removes when imagekit exits
however it ends; a ``.tar.gz`` is read where it is. Either is hashed (sha256) as it is read, so a host can check
what it received before it replaces anything. What a host must never get is refused here, naming the path and the
fix: links that leave the bundle (absolute, or escaping through ``..``, followed through the bundle's other
links), set-id bits, device files, FIFOs and sockets."""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

CHUNK = 1 << 20
MAX_HOPS = 40  # links followed while resolving one path, as the kernel does (ELOOP)
ARCHIVES = (".tar.gz", ".tgz")
FIX = "pass --agent-bundle DIR|FILE.tar.gz (default: the profile's example bundle)"


class BadBundle(InputError):
    """A bundle a host must not get, or that cannot be read."""


@dataclass(frozen=True)
class Bundle:
    """A checked bundle as .tar.gz bytes in ``file``: ``size`` bytes whose sha256 is ``sha256`` (hex)."""

    source: str  # what the operator named (for messages)
    file: BinaryIO
    size: int
    sha256: str
    names: frozenset[str]  # its regular files, relative to its top ("index.js", "lib/x.js")

    def chunks(self) -> Iterator[bytes]:
        """Its bytes, a chunk at a time (positional reads: several hosts may be sent it at once)."""
        offset, fd = 0, self.file.fileno()
        while chunk := os.pread(fd, CHUNK, offset):
            offset += len(chunk)
            yield chunk

    def data(self) -> bytes:
        """All of it, for a bundle small enough to travel in the user data."""
        return b"".join(self.chunks())

    def require(self, entrypoint: str, why: str) -> None:
        if entrypoint not in self.names:
            raise BadBundle(f"agent bundle {self.source} has no {entrypoint} ({why})")


def load(path: Path) -> Bundle:
    """The bundle at ``path`` (a directory, or a .tar.gz file), every entry checked; BadBundle otherwise."""
    if path.is_dir():
        return _pack(path)
    if path.is_file() and path.name.endswith(ARCHIVES):
        return _archive(path)
    raise BadBundle(f"agent bundle {path} is neither a directory nor a .tar.gz file: {FIX}")


def in_memory(data: bytes, source: str) -> Bundle:
    """Bytes already at hand as a bundle (a roll's code, read from the agent's old host), sent as any other."""
    out = tempfile.TemporaryFile(prefix="imagekit-bundle-")
    out.write(data)
    out.flush()
    return Bundle(source, out, len(data), hashlib.sha256(data).hexdigest(), frozenset())


def _pack(top: Path) -> Bundle:
    """A directory, checked, then packed into an anonymous temporary file: root-owned, time 0, sorted."""
    entries: list[tuple[str, os.stat_result]] = []
    for folder, dirs, files in os.walk(top):  # links to directories are listed, never entered
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(folder, name)
            entries.append((os.path.relpath(full, top), os.lstat(full)))
    entries.sort()
    links = {rel: os.readlink(top / rel) for rel, st in entries if stat.S_ISLNK(st.st_mode)}
    for rel, st in entries:
        _check(f"{top}/{rel}", rel, st.st_mode, links.get(rel), links)
    out = tempfile.TemporaryFile(prefix="imagekit-bundle-")
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, _ in entries:
            info = tar.gettarinfo(str(top / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isreg():
                with open(top / rel, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    digest, size = hashlib.sha256(), 0
    out.seek(0)
    while chunk := out.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    names = frozenset(rel for rel, st in entries if stat.S_ISREG(st.st_mode))
    return Bundle(str(top), out, size, digest.hexdigest(), names)


def _archive(path: Path) -> Bundle:
    """A .tar.gz, hashed in one pass and every member checked in a second (both streamed); sent from where it is."""
    fh = open(path, "rb")  # noqa: SIM115  held by the Bundle (closed with the process)
    digest, size = hashlib.sha256(), 0
    while chunk := fh.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            members = list(tar)
        _check_members(path, members)
    except (tarfile.TarError, OSError, EOFError) as exc:
        fh.close()
        raise BadBundle(f"agent bundle {path} is not a readable .tar.gz ({exc}): {FIX}") from None
    except BadBundle:
        fh.close()
        raise
    names = frozenset(_relative(m.name) for m in members if m.isreg())
    return Bundle(str(path), fh, size, digest.hexdigest(), names)


def _check_members(path: Path, members: list[tarfile.TarInfo]) -> None:
    links = {_relative(m.name): m.linkname for m in members if m.issym()}
    for m in members:
        rel, where = _relative(m.name), f"{path}: member {m.name}"
        if rel == ".." or rel.startswith("../") or m.name.startswith("/"):
            raise BadBundle(f"agent bundle {where} would be written outside the bundle: make the archive with "
                            "paths relative to its top (tar -C DIR -czf FILE .)")
        if m.islnk() and _escapes("", m.linkname, links):
            raise BadBundle(f"agent bundle {where} is a hard link to {m.linkname}, outside the bundle: pack the "
                            "file itself")
        kind = stat.S_IFLNK if m.issym() else stat.S_IFDIR if m.isdir() else stat.S_IFCHR if m.ischr() else \
            stat.S_IFBLK if m.isblk() else stat.S_IFIFO if m.isfifo() else stat.S_IFREG
        _check(where, rel, kind | m.mode, m.linkname if m.issym() else None, links)


def _relative(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")) if name.strip("/.") else "."


def _check(where: str, rel: str, mode: int, target: str | None, links: dict[str, str]) -> None:
    """One entry: a regular file, a directory, or a link that stays in the bundle; no set-id bit."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        kind = "a device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
        raise BadBundle(f"agent bundle {where} is {kind}: an agent's code holds only files, directories and links "
                        "inside it; remove it from the bundle")
    if target is not None:
        if posixpath.isabs(target):
            raise BadBundle(f"agent bundle {where} is a link to the absolute path {target}, which leaves the bundle "
                            "(on the host it would point at the host's own files): make it relative to a file in "
                            "the bundle, or copy the file in")
        if _escapes(rel, target, links):
            raise BadBundle(f"agent bundle {where} is a link to {target}, which leads outside the bundle: make it "
                            "point at a file in the bundle, or copy the file in")
    elif mode & (stat.S_ISUID | stat.S_ISGID):
        raise BadBundle(f"agent bundle {where} has a set-user-ID or set-group-ID bit (mode {stat.S_IMODE(mode):o}): "
                        "clear it (chmod u-s,g-s) before packing; the agent runs unprivileged")


def _escapes(rel: str, target: str, links: dict[str, str]) -> bool:
    """Whether the link at ``rel`` (relative to the bundle's top) with ``target`` leads outside the bundle, its
    path followed through the bundle's other links as the kernel would follow them once unpacked."""
    here: list[str] = [p for p in posixpath.dirname(rel).split("/") if p not in ("", ".")]
    todo = target.split("/")[::-1]
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not here:
                return True
            here.pop()
            continue
        here.append(part)
        link = links.get("/".join(here))
        if link is None:
            continue
        hops += 1
        if hops > MAX_HOPS or posixpath.isabs(link):  # a loop resolves nowhere; an absolute link is refused itself
            return posixpath.isabs(link)
        here.pop()
        todo.extend(link.split("/")[::-1])
    return False
