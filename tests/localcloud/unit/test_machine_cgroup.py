"""A machine's own cgroup: where it is made, how nspawn is started in it, how its CPU time is read and removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcloud.guests import machines
from localcloud.guests.machines import Machine, cgroup_hierarchies, remove_cgroup


def _hybrid(fs: Path) -> None:
    for h in ("unified", "systemd"):
        (fs / h).mkdir(parents=True)
        (fs / h / "cgroup.procs").write_text("")


def test_hybrid_host_makes_the_guest_cgroup_in_the_unified_and_systemd_hierarchies(tmp_path):
    _hybrid(tmp_path)
    assert cgroup_hierarchies(tmp_path) == [tmp_path / "unified", tmp_path / "systemd"]


def test_pure_cgroup2_host_has_one_hierarchy(tmp_path):
    (tmp_path / "cgroup.procs").write_text("")
    assert cgroup_hierarchies(tmp_path) == [tmp_path]


def test_no_cgroup_fs_means_no_cgroup_and_an_unchanged_command(tmp_path, monkeypatch):
    monkeypatch.setattr(machines, "CGROUP_FS", tmp_path / "none")
    m = Machine("ikbr9-1", tmp_path, "h", tmp_path / "log", lambda: None)
    assert m.cgroups == []
    assert m._in_own_cgroup(["systemd-nspawn", "-b"]) == ["systemd-nspawn", "-b"]
    assert m.cpu_seconds() is None


def test_nspawn_is_started_by_a_shell_that_moves_itself_into_fresh_cgroups(tmp_path, monkeypatch):
    _hybrid(tmp_path)
    monkeypatch.setattr(machines, "CGROUP_FS", tmp_path)
    m = Machine("ikbr9-7", tmp_path, "h", tmp_path / "log", lambda: None)
    stale = tmp_path / "unified/localcloud/ikbr9-7/payload"
    stale.mkdir(parents=True)  # a previous boot's
    cmd = m._in_own_cgroup(["echo", "it's nspawn"])
    assert not stale.exists()
    assert cmd[:2] == ["/bin/sh", "-c"] and cmd[-2:] == ["echo", "it's nspawn"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "it's nspawn"  # exec'd: the pid is the command's
    for h in ("unified", "systemd"):
        assert (tmp_path / h / "localcloud/ikbr9-7/cgroup.procs").read_text().strip().isdigit()


def test_cpu_seconds_come_from_the_unified_cpu_stat_while_running(tmp_path, monkeypatch):
    _hybrid(tmp_path)
    monkeypatch.setattr(machines, "CGROUP_FS", tmp_path)
    m = Machine("ikbr9-8", tmp_path, "h", tmp_path / "log", lambda: None)
    group = tmp_path / "unified/localcloud/ikbr9-8"
    group.mkdir(parents=True)
    (group / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert m.cpu_seconds() is None  # off
    m.proc = subprocess.Popen(["sleep", "5"])
    try:
        assert m.cpu_seconds() == 2.5
    finally:
        m.proc.kill()
        m.proc.wait()


def test_remove_cgroup_removes_empty_groups_deepest_first(tmp_path):
    (tmp_path / "g/payload/system.slice/ssh.service").mkdir(parents=True)
    (tmp_path / "g/supervisor").mkdir()
    remove_cgroup(tmp_path / "g")
    assert not (tmp_path / "g").exists()
    remove_cgroup(tmp_path / "gone")  # nothing there: nothing to do
