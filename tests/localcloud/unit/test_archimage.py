"""The arm64 image's build ends with the local cloud: a debootstrap still running is stopped with what it started."""

from __future__ import annotations

import subprocess
import time

from localcloud.host import archimage
from localcloud.host.baseimage import partial_path
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
