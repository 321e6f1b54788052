"""A guest's cgroups: where its CPU time is counted and its limits (``limits``) and device list hold.

On a hybrid host (cgroup v1 controllers, a v2 tree without controllers) a guest gets a group of its own in
every hierarchy it needs: the unified and systemd ones (systemd-nspawn finds its own cgroup there, with
``--keep-unit``, and mounts the unified one in the guest), and the v1 ``memory``, ``pids``, ``cpu``, ``devices``
and ``blkio`` ones, which carry its limits without a systemd manager on the host. The groups are made under the
local cloud's own cgroup of each hierarchy (so that whatever the operator's environment limits the local cloud
to holds for its guests too) and are owned by the host's root: the guest sees none of the v1 ones, and in its
user namespace could not write to them if it mounted them (devices.allow wants CAP_SYS_ADMIN of the host).

blkio has no weight without a proportional I/O scheduler, and cgroup v1 attributes buffered writeback to no
group: the guest's group counts its direct I/O, nothing caps its disk bandwidth.

On a host with cgroup v2 only, the guest gets its one group, counting CPU time, and no limits (enabling
controllers there is a change of its own); the user namespace still holds.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .limits import Limits

log = logging.getLogger("localcloud")

CGROUP_FS = Path("/sys/fs/cgroup")
LIMITED = ("memory", "pids", "cpu", "devices", "blkio")
# What a container needs (and what systemd-nspawn's own DevicePolicy=closed allows): the pseudo devices, the
# tty and ptys (the console is a pty), /dev/net/tun. "m" lets nspawn make the nodes while it sets /dev up; in
# the guest's user namespace the kernel refuses mknod of any device anyway.
DEVICES = ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  # null zero full random urandom
           "c 5:0 rwm", "c 5:2 rwm", "c 136:* rw",  # tty, ptmx, the ptys
           "c 10:200 rwm")  # /dev/net/tun


def cgroup_hierarchies(fs: Path | None = None) -> list[Path]:
    """The hierarchies a guest's CPU time is counted in (the first) and nspawn needs a cgroup of its own in: the
    unified and systemd ones on a hybrid host; a pure cgroup v2 host has one."""
    fs = fs or CGROUP_FS
    if (fs / "cgroup.procs").exists():  # cgroup v2 only
        return [fs]
    return [h for h in (fs / "unified", fs / "systemd") if (h / "cgroup.procs").exists()]


def limited_hierarchies(fs: Path | None = None) -> dict[str, Path]:
    """The v1 controllers' hierarchies that carry a guest's limits, by controller (none on a pure v2 host)."""
    fs = fs or CGROUP_FS
    return {c: fs / c for c in LIMITED if (fs / c / "cgroup.procs").exists()}


def own_cgroup(hierarchy: str, proc_cgroup: str | None = None) -> str:
    """This process's cgroup in the v1 ``hierarchy`` ("memory", "pids", ...), from /proc/self/cgroup."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if hierarchy in controllers.split(","):
            return path
    return "/"


def remove_cgroup(path: Path) -> None:
    """Remove an empty cgroup and the cgroups in it, deepest first (best effort: a busy one stays)."""
    if not path.is_dir():
        return
    for sub, _subdirs, _files in sorted(os.walk(path), key=lambda entry: -entry[0].count("/")):
        try:
            os.rmdir(sub)
        except OSError:
            pass


class GuestGroups:
    """The cgroups of the machine ``name``; ``make`` before each boot, ``remove`` once it is off."""

    def __init__(self, name: str, limits: Limits, fs: Path | None = None, proc_cgroup: str | None = None):
        fs = fs or CGROUP_FS
        self.limits = limits
        unified = [h / "localcloud" / name for h in cgroup_hierarchies(fs)]
        self.limited = {c: h / own_cgroup(c, proc_cgroup).lstrip("/") / "localcloud" / name
                        for c, h in limited_hierarchies(fs).items()}
        self.all = unified + list(self.limited.values())
        self.counting = unified[0] if unified else None

    def make(self) -> list[Path]:
        """Fresh groups (a previous boot's counters start again at 0) with the limits written; returns the
        ``cgroup.procs`` files a process joins them by. Empty when they cannot be made: the guest then runs
        unlimited in nspawn's groups, and says so in the log."""
        self.remove()
        try:
            for group in self.all:
                group.mkdir(parents=True, exist_ok=True)
            self._write_limits()
        except OSError as exc:
            log.warning("%s: no cgroups of its own (%s): its CPU time is not counted, its limits do not hold",
                        self.all[0].name if self.all else "guest", exc)
            self.remove()
            return []
        return [group / "cgroup.procs" for group in self.all]

    def _write_limits(self) -> None:
        lim, groups = self.limits, self.limited
        if "memory" in groups:
            (groups["memory"] / "memory.limit_in_bytes").write_text(str(lim.memory_bytes))
            if (swap := groups["memory"] / "memory.memsw.limit_in_bytes").exists():
                swap.write_text(str(lim.memory_bytes))
        if "pids" in groups:
            (groups["pids"] / "pids.max").write_text(str(lim.pids))
        if "cpu" in groups:
            (groups["cpu"] / "cpu.shares").write_text(str(lim.cpu_shares))
        if "devices" in groups:
            (groups["devices"] / "devices.deny").write_text("a")
            for rule in DEVICES:
                (groups["devices"] / "devices.allow").write_text(rule)

    def remove(self, wait: float = 0) -> None:
        """Remove the groups; ``wait`` seconds for the last of a killed guest's processes to leave them."""
        deadline = time.monotonic() + wait
        while True:
            for group in self.all:
                remove_cgroup(group)
            if not any(group.exists() for group in self.all) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def cpu_seconds(self) -> float | None:
        """CPU time (user and system) spent in the groups since ``make``: the guest's and its nspawn's."""
        if self.counting is None:
            return None
        try:
            stat = dict(line.split() for line in (self.counting / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        except (OSError, KeyError, ValueError):
            return None


def sweep(prefix: str, fs: Path | None = None) -> None:
    """Remove the empty groups of machines named ``prefix``… (a crashed run's, whose guests were killed)."""
    fs = fs or CGROUP_FS
    parents = [h / "localcloud" for h in cgroup_hierarchies(fs)]
    parents += [h / own_cgroup(c).lstrip("/") / "localcloud" for c, h in limited_hierarchies(fs).items()]
    for parent in parents:
        for group in parent.glob(f"{prefix}*"):
            remove_cgroup(group)
