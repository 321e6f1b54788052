"""Disk quota groups: which leftover groups a start sweeps, and that a delete lifts the limit first."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcloud.host import diskquota

SHOW = """Qgroupid    Referenced    Exclusive Child   Path
--------    ----------    --------- -----   ----
0/5              16384        16384 -       <toplevel>
0/300        104857600    104857600 -       disks/1000001
1/299                0            0 -       <0 member qgroups>
1/300        104857600    104857600 0/300   <0 member qgroups>
1/301                0            0 -       <0 member qgroups>
"""


def fake_run(calls: list, show: str = ""):
    """A host command runner that records the commands and answers `btrfs qgroup show` with ``show``."""
    def run(cmd, *, check=True, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, show if cmd[1:3] == ["qgroup", "show"] else "", "")
    return run


def test_a_start_destroys_only_groups_without_members(monkeypatch):
    calls: list = []
    monkeypatch.setattr(diskquota, "run", fake_run(calls, SHOW))
    diskquota.forget(Path("/pool"))
    assert ["btrfs", "qgroup", "clear-stale", "/pool"] in calls
    assert [c for c in calls if "destroy" in c] == [["btrfs", "qgroup", "destroy", g, "/pool"]
                                                    for g in ("1/299", "1/301")]


def test_a_limit_puts_the_disk_in_its_own_group_and_release_lifts_it(monkeypatch):
    calls: list = []
    monkeypatch.setattr(diskquota, "run", fake_run(calls))
    monkeypatch.setattr(diskquota, "subvolume_id", lambda disk: "300")
    diskquota.limit(Path("/pool"), Path("/pool/disks/1000001"), 40 << 30)
    assert calls == [["btrfs", "qgroup", "create", "1/300", "/pool"],
                     ["btrfs", "qgroup", "assign", "0/300", "1/300", "/pool"],
                     ["btrfs", "qgroup", "limit", str(40 << 30), "1/300", "/pool"]]
    calls.clear()
    assert diskquota.release(Path("/pool"), Path("/pool/disks/1000001")) == "1/300"
    assert calls == [["btrfs", "qgroup", "limit", "none", "1/300", "/pool"]]
