"""The local cloud's flat apt repository: every .deb of one directory, indexed for guests.

Guests use ``deb [trusted=yes] http://HOST:PORT/apt ./``; it holds the Tailscale stand-in
(``localcloud/tailscale/package.py``) and Node.js (``localcloud/host/nodejs.py``). The index is made
from the packages themselves (their control fields, sizes and hashes), so whoever adds or replaces
a .deb only calls ``index()``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from email.utils import formatdate
from pathlib import Path

# Guests keep these fields of the Release they last saw, and apt-get update refuses a repository whose
# Origin, Label, Suite or Codename changed: they stay as the first repository (the stand-in's alone) had them.
RELEASE_FIELDS = ("Origin: imagekit-localcloud\nLabel: Tailscale stand-in (imagekit local cloud)\n"
                  "Suite: standin\nCodename: standin\n")


def index(repo_dir: Path) -> None:
    """Write Packages, Packages.gz and Release for the .debs in ``repo_dir``.

    Each file is replaced whole (never seen half-written); the indexes come first and Release, which
    names their hashes, last. A guest's apt-get update that reads between the two sees a hash mismatch;
    the window is milliseconds, and it opens only when a package is added or replaced (the local cloud's
    start, a Node.js release packaged), not on every build.
    """
    repo_dir = Path(repo_dir)
    packages = "\n".join(_stanza(deb) for deb in sorted(repo_dir.glob("*.deb"))).encode()
    indexes = (("Packages", packages), ("Packages.gz", gzip.compress(packages, mtime=0)))
    release = (
        RELEASE_FIELDS + f"Date: {formatdate(usegmt=True)}\n"
        "Description: imagekit local cloud: the Tailscale stand-in, and Node.js as the npm registry carries it\n"
        "MD5Sum:\n"
        + "".join(f" {hashlib.md5(b).hexdigest()} {len(b)} {n}\n" for n, b in indexes)
        + "SHA256:\n"
        + "".join(f" {hashlib.sha256(b).hexdigest()} {len(b)} {n}\n" for n, b in indexes)
    )
    for name, data in (*indexes, ("Release", release.encode())):
        tmp = repo_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, repo_dir / name)


def _stanza(deb: Path) -> str:
    """The package's control fields and where apt finds it, as one Packages stanza."""
    control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True,
                             text=True).stdout.rstrip("\n")
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(deb, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return (f"{control}\nFilename: {deb.name}\nSize: {deb.stat().st_size}\n"
            f"MD5sum: {md5.hexdigest()}\nSHA256: {sha256.hexdigest()}\n")
