"""`cloud-down` stops the local cloud's own API process and nothing else (issue 11, item 6)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from localcloud import client


def test_down_leaves_a_stranger_alone_when_the_pid_file_points_at_it(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEKIT_LOCALCLOUD_DIR", str(tmp_path))
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "api.pid").write_text(str(stranger.pid))  # a stale pid file, the pid since reused
        assert client.down(timeout=2) is False
        assert client.current() is None
        assert stranger.poll() is None, "cloud-down signalled a process that is not the local cloud"
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_a_process_that_is_the_local_cloud(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEKIT_LOCALCLOUD_DIR", str(tmp_path))
    # A process whose command line is the API's (python -m localcloud), without starting a cloud.
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "localcloud"])
    deadline = time.monotonic() + 10
    while b"localcloud" not in Path(f"/proc/{fake.pid}/cmdline").read_bytes():  # until it has exec'd
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        (tmp_path / "api.pid").write_text(str(fake.pid))
        assert client.down(timeout=5) is True
        assert fake.wait(5) is not None
    finally:
        fake.kill()
        fake.wait()
