"""The digest of an agent bundle's tree: what a snapshot's ``bundle-digest`` label and an agent's ``code-digest``
label hold, so that provisioning can tell code already baked into a snapshot from new code, and ``status`` can
show at a glance which agents run the same code.

It is the sha256 of the tree as content, not as bytes on a disk: each entry's path, kind (directory, file,
symbolic link), a file's content and executable bit, a link's target (a link is hashed as a link, never
followed). Modification times, owners, the order a directory lists its entries in and whether the bundle is a
directory or a .tar.gz of the same tree change nothing. Written as unpadded base64url (43 characters) with the
first bit cleared, so that the value starts with a letter and ends with a letter or digit, as Hetzner's label
values must (255 of sha256's bits remain).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from .agentbundle import Bundle
from .errors import InputError

LENGTH = 43
BUNDLE_LABEL = "bundle-digest"  # a snapshot's: the digest of the code baked into it
CODE_LABEL = "code-digest"  # an agent's: the digest of the code it runs (set by provision and update)
CHUNK = 1 << 20


def digest(bundle: Path) -> str:
    """The digest of a bundle directory or .tar.gz; anything else is an error naming the path."""
    bundle = Path(bundle)
    if bundle.is_dir():
        entries = dict(_walk(bundle))
    elif bundle.is_file() and bundle.name.endswith((".tar.gz", ".tgz")):
        with open(bundle, "rb") as fh:
            entries = dict(_members(fh, str(bundle)))
    else:
        raise InputError(f"agent bundle {bundle} is neither a directory nor a .tar.gz file")
    return of_entries(entries)


def of_entries(entries: dict[str, tuple[str, bytes]]) -> str:
    """The digest of ``{path: (kind, payload)}`` (kind d, f, x: an executable file, l: a link, h: an archive's hard
    link), sorted by path so that listing order does not count."""
    h = hashlib.sha256()
    for path in sorted(entries):
        kind, payload = entries[path]
        h.update(b"\0".join((path.encode(), kind.encode(), payload)) + b"\n")
    raw = bytearray(h.digest())
    raw[0] &= 0x7F  # first character A-Z or a-f; the last of 43 carries 4 bits: always a letter or digit
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def _walk(root: Path) -> Iterator[tuple[str, tuple[str, bytes]]]:
    for item in root.rglob("*"):
        rel = item.relative_to(root).as_posix()
        mode = item.lstat().st_mode
        if stat.S_ISLNK(mode):
            yield rel, ("l", str(item.readlink()).encode())
        elif stat.S_ISDIR(mode):
            yield rel, ("d", b"")
        elif stat.S_ISREG(mode):
            with open(item, "rb") as fh:
                yield rel, (_file_kind(mode), _sha256(fh))
        else:
            raise InputError(f"agent bundle {root}: {rel} is not a file, directory or link")


def of_archive(data: bytes) -> str:
    """The digest of a bundle as .tar.gz bytes: the same as its tree's."""
    return of_entries(dict(_members(io.BytesIO(data), "(archive)")))


def of_bundle(bundle: Bundle) -> str:
    """The digest of a checked bundle (what provisioning and update send), read as a stream, never whole."""
    with os.fdopen(os.dup(bundle.file.fileno()), "rb") as fh:  # its own reader: the bundle reads by offset
        fh.seek(0)
        return of_entries(dict(_members(fh, bundle.source)))


def _members(fileobj: IO[bytes], archive: str) -> Iterator[tuple[str, tuple[str, bytes]]]:
    with tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
        for member in tar:
            rel = PurePosixPath(member.name.lstrip("/")).as_posix().removeprefix("./")
            if rel in ("", "."):
                continue
            for parent in PurePosixPath(rel).parents:  # a tar may leave a file's directories implicit
                if str(parent) != ".":
                    yield str(parent), ("d", b"")
            if member.issym():
                yield rel, ("l", member.linkname.encode())
            elif member.islnk():  # another member's content (agentbundle checked it stays inside)
                yield rel, ("h", member.linkname.encode())
            elif member.isdir():
                yield rel, ("d", b"")
            elif member.isfile():
                fh = tar.extractfile(member)
                assert fh is not None, "a regular member has content"
                yield rel, (_file_kind(member.mode), _sha256(fh))
            else:
                raise InputError(f"agent bundle {archive}: {rel} is not a file, directory or link")


def _file_kind(mode: int) -> str:
    return "x" if mode & 0o111 else "f"


def _sha256(fh: IO[bytes]) -> bytes:
    h = hashlib.sha256()
    while chunk := fh.read(CHUNK):
        h.update(chunk)
    return h.hexdigest().encode()
