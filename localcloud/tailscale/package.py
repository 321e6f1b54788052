"""The stand-in ``tailscale`` Debian package, in the local cloud's apt repository (``localcloud/host/aptrepo.py``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import urllib.parse
from importlib.resources import files
from pathlib import Path

from ..host import aptrepo

PACKAGE_VERSION = "1.76.1~standin1"
_GUEST = files("localcloud") / "guest" / "tailscale"


def _guest_file(name: str) -> str:
    return (_GUEST / name).read_text()


def _package_files(login_server: str, login_server6: str | None = None) -> dict[str, tuple[str, int]]:
    """Path in the package -> (content, mode). ``login_server6``: the same server on the host's IPv6 address, which
    the CLI tries when the first cannot be reached (an IPv6-only guest)."""
    for url in (login_server, login_server6 or login_server):
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"login server must be an http(s) URL, got {url!r}")
    cli = (_guest_file("tailscale.py").replace("@VERSION@", PACKAGE_VERSION)
           .replace('"@LOGIN_SERVER@"', repr(login_server))
           .replace('"@LOGIN_SERVER6@"', repr(login_server6 or login_server)))
    return {
        "usr/bin/tailscale": (cli, 0o755),
        "usr/sbin/tailscaled": (_guest_file("tailscaled.py").replace("@VERSION@", PACKAGE_VERSION), 0o755),
        "lib/systemd/system/tailscaled.service": (_guest_file("tailscaled.service"), 0o644),
        "DEBIAN/postinst": (_guest_file("postinst"), 0o755),
        "DEBIAN/prerm": (_guest_file("prerm"), 0o755),
    }


def _control(installed_kib: int) -> str:
    return (f"Package: tailscale\nVersion: {PACKAGE_VERSION}\nArchitecture: all\n"
            f"Maintainer: imagekit local cloud <standin@localcloud.invalid>\n"
            f"Installed-Size: {installed_kib}\nDepends: python3\nSection: net\nPriority: optional\n"
            f"Description: {_guest_file('description')}")


def build_apt_repo(repo_dir: Path, login_server: str, login_server6: str | None = None) -> Path:
    """Put the stand-in ``tailscale`` .deb in the local cloud's apt repository, and index the repository.

    The package is rebuilt only when its content (including the baked-in login server) changes; the
    index always, so that it names every package the repository holds (Node.js too).
    """
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    files = _package_files(login_server, login_server6)
    fingerprint = hashlib.sha256(json.dumps([PACKAGE_VERSION, files], sort_keys=True).encode()).hexdigest()
    deb_name = f"tailscale_{PACKAGE_VERSION}_all.deb"
    stamp = repo_dir / ".standin-build"
    if not ((repo_dir / deb_name).exists() and stamp.exists() and stamp.read_text() == fingerprint):
        _build(repo_dir, files, deb_name)
        stamp.write_text(fingerprint)
    aptrepo.index(repo_dir)
    return repo_dir


def _build(repo_dir: Path, files: dict[str, tuple[str, int]], deb_name: str) -> None:
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
