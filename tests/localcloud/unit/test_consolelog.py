"""A guest's console log keeps what it printed last, in at most two capped files."""

from __future__ import annotations

import os
import subprocess
import time

from localcloud.guests.consolelog import capture, rotated


def test_the_log_rotates_at_its_cap_and_keeps_the_newest_output(tmp_path):
    log = tmp_path / "machines/7.log"
    out = capture(log, max_bytes=1000)
    lines = [f"line-{i}\n" for i in range(1, 301)]
    try:
        for batch in range(10):  # as a console prints: a little at a time
            os.write(out, "".join(lines[batch * 30:(batch + 1) * 30]).encode())
            time.sleep(0.02)
    finally:
        os.close(out)
    total = "".join(lines)
    deadline = time.monotonic() + 5
    while not (log.exists() and log.read_text().endswith("line-300\n")) and time.monotonic() < deadline:
        time.sleep(0.02)
    current, old = log.read_text(), rotated(log).read_text()
    assert len(current) <= 1000 and len(old) <= 1000
    assert current.endswith("line-300\n") and old  # the newest output, and what came before it
    assert old in total and current in total and total.index(old) < total.index(current)


def test_a_child_writes_through_the_pipe(tmp_path):
    log = tmp_path / "9.log"
    out = capture(log)
    try:
        subprocess.run(["echo", "from the child"], stdout=out, check=True)
    finally:
        os.close(out)
    deadline = time.monotonic() + 5
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read_text() == "from the child\n"


def test_one_write_larger_than_the_cap_keeps_its_end(tmp_path):
    log = tmp_path / "8.log"
    out = capture(log, max_bytes=100)
    try:
        os.write(out, b"x" * 500 + b"END\n")
    finally:
        os.close(out)
    deadline = time.monotonic() + 5
    while not (log.exists() and log.read_bytes().endswith(b"END\n")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read_bytes().endswith(b"END\n") and log.stat().st_size <= 100
