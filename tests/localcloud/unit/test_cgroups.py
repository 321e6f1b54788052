"""A machine's cgroups: where they are made, the limits and device list written into them, how nspawn is started
in them, how its CPU time is read and how they are removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localcloud.engine.catalog import SERVER_TYPE_BY_NAME
from localcloud.guests import cgroups, machines
from localcloud.guests.cgroups import DEVICES, GuestGroups, cgroup_hierarchies, own_cgroup, remove_cgroup, sweep
from localcloud.guests.confinement import launcher
from localcloud.guests.limits import GIB, PIDS, Limits
from localcloud.guests.machines import Machine

PROC_CGROUP = "9:name=systemd:/\n8:pids:/\n4:memory:/sandbox/abc\n1:cpu:/\n0::/\n"
CX23 = Limits.of_type(SERVER_TYPE_BY_NAME["cx23"])


def _hybrid(fs: Path, *v1: str) -> None:
    for h in ("unified", "systemd", *v1):
        (fs / h).mkdir(parents=True)
        (fs / h / "cgroup.procs").write_text("")


def test_limits_follow_the_server_type():
    assert (CX23.memory_bytes, CX23.pids, CX23.cpu_shares, CX23.disk_bytes) == (4 * GIB, PIDS, 1024, 40 * GIB)
    assert Limits.of_type(SERVER_TYPE_BY_NAME["cx43"]).cpu_shares == 4 * CX23.cpu_shares
    assert Limits.of_type(SERVER_TYPE_BY_NAME["cx43"]).memory_bytes == 16 * GIB


def test_hybrid_host_makes_the_guest_cgroup_in_the_unified_and_systemd_hierarchies(tmp_path):
    _hybrid(tmp_path)
    assert cgroup_hierarchies(tmp_path) == [tmp_path / "unified", tmp_path / "systemd"]


def test_pure_cgroup2_host_has_one_hierarchy_and_no_v1_limits(tmp_path):
    (tmp_path / "cgroup.procs").write_text("")
    assert cgroup_hierarchies(tmp_path) == [tmp_path]
    assert GuestGroups("ikbr9-1", CX23, tmp_path, PROC_CGROUP).limited == {}


def test_v1_groups_live_under_the_local_clouds_own_cgroup(tmp_path):
    assert own_cgroup("memory", PROC_CGROUP) == "/sandbox/abc"
    assert own_cgroup("blkio", PROC_CGROUP) == "/"  # not listed: the root
    _hybrid(tmp_path, "memory", "pids", "cpu", "devices", "blkio")
    g = GuestGroups("ikbr9-2", CX23, tmp_path, PROC_CGROUP)
    assert g.limited["memory"] == tmp_path / "memory/sandbox/abc/localcloud/ikbr9-2"
    assert g.limited["pids"] == tmp_path / "pids/localcloud/ikbr9-2"
    assert g.counting == tmp_path / "unified/localcloud/ikbr9-2"


def test_make_writes_the_limits_and_a_closed_device_list(tmp_path):
    _hybrid(tmp_path, "memory", "pids", "cpu", "devices", "blkio")
    g = GuestGroups("ikbr9-3", CX23, tmp_path, PROC_CGROUP)
    memory = g.limited["memory"]
    memory.mkdir(parents=True)
    (memory / "memory.memsw.limit_in_bytes").write_text("")  # the host accounts swap
    (memory / "stale").mkdir()  # a previous boot's
    procs = g.make()
    assert len(procs) == 7 and all(p.name == "cgroup.procs" for p in procs)
    assert not (memory / "stale").exists()
    assert (memory / "memory.limit_in_bytes").read_text() == str(4 * GIB)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(4 * GIB)
    assert (g.limited["pids"] / "pids.max").read_text() == str(PIDS)
    assert (g.limited["cpu"] / "cpu.shares").read_text() == "1024"
    assert (g.limited["devices"] / "devices.deny").read_text() == "a"
    assert (g.limited["devices"] / "devices.allow").read_text() == DEVICES[-1]  # each rule written in turn
    assert "c 136:* rw" in DEVICES and not any(rule.startswith("b ") for rule in DEVICES)  # no block device
    g.remove()
    assert not g.counting.exists()  # (a fake group with files in it stays; cgroupfs removes them)


def test_no_cgroup_fs_means_no_cgroup_and_a_launcher_that_joins_none(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "CGROUP_FS", tmp_path / "none")
    m = Machine("ikbr9-4", tmp_path, "h", tmp_path / "log", lambda: None, CX23)
    assert m.cgroups.make() == []
    assert m.cpu_seconds() is None
    cmd = launcher([], ["systemd-nspawn", "-b"])
    assert cmd[-3:] == ["--", "systemd-nspawn", "-b"] and cmd[1:3] == ["-m", "localcloud.guests.confinement"]


def test_the_launcher_joins_the_groups_and_execs_the_command(tmp_path):
    _hybrid(tmp_path)
    g = GuestGroups("ikbr9-7", CX23, tmp_path, PROC_CGROUP)
    out = subprocess.run(launcher(g.make(), ["sh", "-c", "echo $$"]), capture_output=True, text=True, check=True,
                         cwd=Path(machines.__file__).parent.parent)
    pid = out.stdout.strip()  # exec'd: the pid that joined is the command's
    for h in ("unified", "systemd"):
        assert (tmp_path / h / "localcloud/ikbr9-7/cgroup.procs").read_text() == pid


def test_cpu_seconds_come_from_the_unified_cpu_stat_while_running(tmp_path, monkeypatch):
    _hybrid(tmp_path)
    monkeypatch.setattr(cgroups, "CGROUP_FS", tmp_path)
    m = Machine("ikbr9-8", tmp_path, "h", tmp_path / "log", lambda: None, CX23)
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


def test_a_start_sweeps_the_empty_groups_of_its_own_machines_only(tmp_path, monkeypatch):
    _hybrid(tmp_path, "pids")
    monkeypatch.setattr(cgroups, "own_cgroup", lambda controller, proc_cgroup=None: "/")
    for group in ("unified/localcloud/ikbr9-1/payload/init.scope", "pids/localcloud/ikbr9-2", "pids/localcloud/ik-3"):
        (tmp_path / group).mkdir(parents=True)
    sweep("ikbr9-", tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*/localcloud/*")) == ["ik-3"]
