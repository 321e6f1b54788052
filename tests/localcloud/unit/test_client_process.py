"""`cloud-down` stops the local cloud's own API process and nothing else (issue 11, item 6)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

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


HOLD_LOCK = """import sys, time
from pathlib import Path
from localcloud import apilock
from localcloud.paths import Layout
lock = apilock.hold(Layout(Path(sys.argv[1])))
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_up_while_an_api_process_lives_starts_no_second_api(tmp_path, monkeypatch):
    """The first API process holds its lock but does not answer yet (it is building its image): a second up()
    waits for it and never starts another, whose start would kill and boot again the first one's guests."""
    monkeypatch.setenv("IMAGEKIT_LOCALCLOUD_DIR", str(tmp_path))
    first = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "held\n"
        spawned, said = [], []
        monkeypatch.setattr(client.subprocess, "Popen", lambda *a, **kw: spawned.append(a))
        monkeypatch.setattr(client.os, "geteuid", lambda: 0)
        monkeypatch.setattr(client, "START_TIMEOUT", 2)
        with pytest.raises(client.LocalCloudError, match="did not answer"):
            client.up(progress=said.append)
        assert spawned == [], "a second API process was started while the first lives"
        assert "already starting" in said[0]
    finally:
        first.kill()
        first.wait()
