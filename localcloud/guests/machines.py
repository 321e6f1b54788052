"""Real machines for the local cloud: systemd-nspawn guests with systemd as PID 1.

Guests keep systemd-nspawn's default capability set (plus CAP_NET_ADMIN, which a private
network implies), inside a user namespace of their own: enough for Docker, UFW and fail2ban
inside, and none of it the host's. How they are confined, and what they can still do, is in
``confinement``; their cgroups and limits in ``cgroups`` and ``limits``.

Each guest boots from its own disk (a btrfs snapshot of an image), gets its own network
namespace with a veth on the local cloud's bridge, and is told where its cloud-init data is on
its init's command line (``bootargs``): the host writes nothing into its disk. Power actions
are signals to the guest's systemd, exactly what ACPI and the reset button mean to a VM (an arm guest's are
renumbered for qemu-user: ``init_signal``). Its console goes to a capped log (``consolelog``).

Each guest runs in cgroups of its own (named after the machine), so that what one machine spends
(``cpu_seconds``: its CPU time since it started) is read from the kernel, not estimated.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..paths import BRIDGE
from . import consolelog
from .cgroups import GuestGroups
from .confinement import NSPAWN_CONFINEMENT, launcher
from .limits import Limits

log = logging.getLogger("localcloud")

REBOOT_EXIT = 133  # systemd-nspawn's exit status when the guest asked for a reboot
SIG_POWEROFF = signal.SIGRTMIN + 4  # systemd: start poweroff.target (an ACPI power button)
SIG_POWEROFF_NOW = signal.SIGRTMIN + 14  # systemd: immediate poweroff (pulling the plug)
SIG_REBOOT_NOW = signal.SIGRTMIN + 15  # systemd: immediate reboot (the reset button)
# qemu-user (Debian 12's 7.2) numbers the guest's real-time signals from the kernel's first (32), the host's from
# glibc's SIGRTMIN (34): host SIGRTMIN+n reaches an arm guest's systemd as SIGRTMIN+n-2 (measured: SIGRTMIN+4 put
# it in emergency mode, SIGRTMIN+6 powered it off in 4 s).
QEMU_RT_SHIFT = 2


def init_signal(sig: int, emulated: bool) -> int:
    """The host signal that reaches the guest's init as ``sig``: the same, or renumbered for qemu-user."""
    if emulated and sig >= signal.SIGRTMIN:
        return sig + QEMU_RT_SHIFT
    return sig


class Machine:
    """One guest. ``on_exit(clean: bool)`` is called when it powers off for good."""

    def __init__(self, name: str, root: Path, hostname: str, log_path: Path, on_exit: Callable[[], None],
                 limits: Limits, emulated: bool = False):
        self.name = name
        self.root = root
        self.hostname = hostname
        self.log_path = log_path
        self.on_exit = on_exit
        self.proc: subprocess.Popen | None = None
        self.on_spawn: Callable[[Machine], None] | None = None  # after each start of nspawn (a reboot's too)
        self.boot_args: Callable[[], list[str]] = list  # its init's command line, read at each start
        self._lock = threading.Lock()
        self._stopping = False
        self.limits = limits
        self.emulated = emulated  # its programs run through qemu-user (arm)
        self.cgroups = GuestGroups(name, limits)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stopping = False
            self._spawn()
        threading.Thread(target=self._watch, name=f"watch-{self.name}", daemon=True).start()

    def _spawn(self) -> None:
        cmd = [
            "systemd-nspawn", "--boot", "--quiet",
            f"--directory={self.root}", f"--machine={self.name}", f"--hostname={self.hostname}",
            f"--network-bridge={BRIDGE}", "--register=no", "--keep-unit", *NSPAWN_CONFINEMENT,
            "--console=read-only", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
            *self.boot_args(),
        ]
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        out = consolelog.capture(self.log_path)
        try:
            self.proc = subprocess.Popen(launcher(self.cgroups.make(), cmd), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            os.close(out)
        log.info("machine %s started (nspawn pid %s)", self.name, self.proc.pid)
        if self.on_spawn:
            self.on_spawn(self)

    def cpu_seconds(self) -> float | None:
        """CPU time (user and system) the machine has spent since it started: its guest and its nspawn
        process, from its cgroup. None when it is off or has no cgroup of its own."""
        return self.cgroups.cpu_seconds() if self.running else None

    def _watch(self) -> None:
        while True:
            proc = self.proc
            if proc is None:
                return
            code = proc.wait()
            with self._lock:
                if code == REBOOT_EXIT and not self._stopping:
                    log.info("machine %s rebooting", self.name)
                    self._spawn()
                    continue
                self.proc = None
                self.cgroups.remove(wait=5)
            log.info("machine %s is off (exit %s)", self.name, code)
            self.on_exit()
            return

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def init_pid(self) -> int | None:
        """The guest's PID 1 as seen from the host: a child of nspawn whose innermost pid is 1."""
        inits = _guest_inits(self.proc.pid) if self.proc else []
        return inits[0] if inits else None

    def booted(self) -> bool:
        return self.init_pid() is not None

    def signal_init(self, sig: int) -> bool:
        pid = self.init_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, init_signal(sig, self.emulated))
            return True
        except ProcessLookupError:
            return False

    def shutdown(self) -> None:
        """ACPI-style: ask the guest's systemd to power off; returns at once."""
        self._stopping = True
        if not self.signal_init(SIG_POWEROFF) and self.proc:
            self.proc.send_signal(signal.SIGTERM)

    def poweroff(self, timeout: float = 20) -> None:
        """Pull the plug and wait until the machine is really off.

        The signal goes to whichever guest runs now, again every second: right after a reset
        the watcher may have started a new guest whose systemd is not up yet and misses it.
        """
        self._stopping = True
        deadline = time.monotonic() + timeout
        while (proc := self.proc) is not None:
            if time.monotonic() > deadline:
                self.kill()
                self.wait_off(timeout)
                return
            if proc.poll() is not None:  # exited: the watcher is about to clear (or replace) it
                time.sleep(0.05)
                continue
            self.signal_init(SIG_POWEROFF_NOW)
            try:
                proc.wait(1)
            except subprocess.TimeoutExpired:
                pass

    def reset(self) -> None:
        self.signal_init(SIG_REBOOT_NOW)

    def reboot(self) -> None:
        self.signal_init(signal.SIGINT)  # ctrl-alt-del: systemd starts reboot.target

    def kill(self) -> None:
        if self.proc is not None:
            kill_guest(self.proc.pid)

    def wait_off(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.proc is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.proc is None


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _children(pid: int) -> list[int]:
    kids = []
    for child in _pids():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(child)
    return kids


def _is_namespace_init(pid: int) -> bool:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        nspid = next(line for line in lines if line.startswith("NSpid:"))
    except (OSError, StopIteration):
        return False
    return len(nspid.split()) > 2 and nspid.split()[-1] == "1"


def _guest_inits(nspawn_pid: int) -> list[int]:
    return [pid for pid in _children(nspawn_pid) if _is_namespace_init(pid)]


def kill_guest(nspawn_pid: int) -> None:
    """SIGKILL a guest: its PID 1 first (that ends its whole PID namespace), then nspawn.

    Killing only nspawn would orphan the guest, which keeps running with its address.
    """
    for pid in _guest_inits(nspawn_pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(nspawn_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_orphans(machine_prefix: str) -> list[int]:
    """Kill guests of ours that outlived a crashed API process; returns the pids killed.

    Two kinds: nspawn processes with our machine prefix, and guest PID 1s whose nspawn is gone already,
    recognised by their cgroup, named after the machine (their root is an idmapped mount the host sees as "/").
    """
    nspawns, inits = [], []
    ours = f"/localcloud/{machine_prefix}"
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            groups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"systemd-nspawn") and any(
            a.startswith(f"--machine={machine_prefix}".encode()) for a in cmdline
        ):
            nspawns.append(pid)
        elif ours in groups and _is_namespace_init(pid):
            inits.append(pid)
    for pid in nspawns:
        kill_guest(pid)
    for pid in inits:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed = nspawns + inits
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in killed) and time.monotonic() < deadline:
        time.sleep(0.1)
    return killed
