"""The stand-in ``tailscale`` Debian package and the flat apt repository guests install it from."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import tempfile
import urllib.parse
from email.utils import formatdate
from importlib.resources import files
from pathlib import Path

PACKAGE_VERSION = "1.76.1~standin1"
_GUEST = files("localcloud") / "guest" / "tailscale"


def _guest_file(name: str) -> str:
    return (_GUEST / name).read_text()


def _package_files(login_server: str) -> dict[str, tuple[str, int]]:
    """Path in the package -> (content, mode)."""
    if urllib.parse.urlsplit(login_server).scheme not in ("http", "https"):
        raise ValueError(f"login server must be an http(s) URL, got {login_server!r}")
    cli = (_guest_file("tailscale.py").replace("@VERSION@", PACKAGE_VERSION)
           .replace('"@LOGIN_SERVER@"', repr(login_server)))
    return {
        "usr/bin/tailscale": (cli, 0o755),
        "usr/sbin/tailscaled": (_guest_file("tailscaled.py").replace("@VERSION@", PACKAGE_VERSION), 0o755),
        "lib/systemd/system/tailscaled.service": (_guest_file("tailscaled.service"), 0o644),
        "DEBIAN/postinst": (_guest_file("postinst"), 0o755),
        "DEBIAN/prerm": (_guest_file("prerm"), 0o755),
    }


def _control(installed_kib: int, extra: str = "") -> str:
    """The control stanza; ``extra`` adds the apt index fields (Filename, Size, hashes)."""
    return (f"Package: tailscale\nVersion: {PACKAGE_VERSION}\nArchitecture: all\n"
            f"Maintainer: imagekit local cloud <standin@localcloud.invalid>\n"
            f"Installed-Size: {installed_kib}\nDepends: python3\nSection: net\nPriority: optional\n"
            f"{extra}Description: {_guest_file('description')}")


def build_apt_repo(repo_dir: Path, login_server: str) -> Path:
    """Build the stand-in ``tailscale`` .deb and a flat apt repository around it.

    Guests use ``deb [trusted=yes] http://HOST:PORT/apt ./``. Rebuilt only when the
    package content (including the baked-in login server) changes.
    """
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    files = _package_files(login_server)
    fingerprint = hashlib.sha256(json.dumps([PACKAGE_VERSION, files], sort_keys=True).encode()).hexdigest()
    deb_name = f"tailscale_{PACKAGE_VERSION}_all.deb"
    stamp = repo_dir / ".standin-build"
    if ((repo_dir / deb_name).exists() and (repo_dir / "Release").exists()
            and stamp.exists() and stamp.read_text() == fingerprint):
        return repo_dir

    payload = sum(len(c.encode()) for rel, (c, _) in files.items() if not rel.startswith("DEBIAN/"))
    installed_kib = -(-payload // 1024)
    with tempfile.TemporaryDirectory(dir=repo_dir) as tmp:
        root = Path(tmp) / "pkg"
        for rel, (content, mode) in [*files.items(), ("DEBIAN/control", (_control(installed_kib), 0o644))]:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(mode)
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o755)  # dpkg-deb insists; mkdtemp makes 0700
        built = Path(tmp) / deb_name
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(built)],
                       check=True, capture_output=True, text=True)
        for old in repo_dir.glob("tailscale_*.deb"):
            old.unlink()
        os.replace(built, repo_dir / deb_name)

    data = (repo_dir / deb_name).read_bytes()
    packages = (_control(installed_kib, f"Filename: {deb_name}\nSize: {len(data)}\n"
                                        f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
                                        f"SHA256: {hashlib.sha256(data).hexdigest()}\n") + "\n").encode()
    packages_gz = gzip.compress(packages, mtime=0)
    indexes = (("Packages", packages), ("Packages.gz", packages_gz))
    release = (
        "Origin: imagekit-localcloud\nLabel: Tailscale stand-in (imagekit local cloud)\n"
        "Suite: standin\nCodename: standin\n"
        f"Date: {formatdate(usegmt=True)}\n"
        "Description: imagekit local cloud stand-in for Tailscale's apt repository\n"
        "MD5Sum:\n"
        + "".join(f" {hashlib.md5(b).hexdigest()} {len(b)} {n}\n" for n, b in indexes)
        + "SHA256:\n"
        + "".join(f" {hashlib.sha256(b).hexdigest()} {len(b)} {n}\n" for n, b in indexes)
    )
    (repo_dir / "Packages").write_bytes(packages)
    (repo_dir / "Packages.gz").write_bytes(packages_gz)
    (repo_dir / "Release").write_text(release)
    stamp.write_text(fingerprint)
    return repo_dir
