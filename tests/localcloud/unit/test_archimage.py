"""The arm64 image: its build ends with the local cloud (a debootstrap still running is stopped with what it started),
an image of another revision is built again, and the upgrade in its chroot starts no service."""

from __future__ import annotations

import subprocess
import time

import pytest

from localcloud.host import archimage
from localcloud.host.baseimage import image_path, partial_path
from localcloud.host.hostcmd import HostCommandError
from localcloud.paths import Layout


def test_a_build_still_running_is_stopped_with_its_children(tmp_path):
    layout = Layout(tmp_path / "state")
    target = partial_path(layout, archimage.image_directory("debian-12", "arm"))
    fake = tmp_path / "debootstrap"  # a stand-in with debootstrap's command line, and a child of its own
    fake.write_text("sleep 600 &\nwait\n")
    other = subprocess.Popen(["sh", str(fake), "--arch=arm64", "bookworm", str(tmp_path / "another-cloud")],
                             start_new_session=True)
    build = subprocess.Popen(["sh", str(fake), "--arch=arm64", "bookworm", str(target)], start_new_session=True)
    try:
        time.sleep(0.3)
        archimage.stop_build(layout)
        assert build.wait(5) == -9
        deadline = time.monotonic() + 5
        while subprocess.run(["pgrep", "-s", str(build.pid)], capture_output=True).stdout:
            assert time.monotonic() < deadline, "debootstrap's child outlived it"
            time.sleep(0.1)
        assert other.poll() is None, "stopped another local cloud's build"
    finally:
        for proc in (other, build):
            subprocess.run(["pkill", "-9", "-s", str(proc.pid)])
            proc.wait(5)


def test_an_image_of_another_revision_is_not_built_yet(tmp_path):
    layout = Layout(tmp_path / "state")
    marker = image_path(layout, archimage.image_directory("debian-12", "arm")) / archimage.EMULATED
    assert not archimage.built(layout)
    marker.parent.mkdir(parents=True)
    marker.write_text(archimage.EMULATED_TEXT.replace(f"revision {archimage.REVISION}", "revision 1"))
    assert not archimage.built(layout)  # ensure_arm_image deletes it and builds this revision
    marker.write_text(archimage.EMULATED_TEXT)
    assert archimage.built(layout)


def test_the_upgrade_starts_no_service_and_leaves_no_policy_behind(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "etc/apt").mkdir(parents=True)
    ran = []

    def run(cmd, **kw):
        apt_command = cmd[cmd.index("apt-get") + 1]
        ran.append((apt_command, (root / archimage.NO_SERVICES[0]).read_text(), kw["env"]["DEBIAN_FRONTEND"]))
        if cmd[-1] == "dist-upgrade":
            raise HostCommandError("dpkg failed")

    monkeypatch.setattr(archimage, "run", run)
    with pytest.raises(HostCommandError):
        archimage.upgrade(root, {"http_proxy": "http://127.0.0.1:3142"})
    assert [(command, "exit 101" in policy, frontend) for command, policy, frontend in ran] == [
        ("update", True, "noninteractive"), ("-y", True, "noninteractive")]
    assert not (root / archimage.NO_SERVICES[0]).exists()
    assert "bookworm-security" in (root / "etc/apt/sources.list").read_text()
