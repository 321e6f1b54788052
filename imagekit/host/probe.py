"""Facts read from a host, each one way: cloud-init's state, a systemd unit's state, Tailscale's.

Callers compare typed values instead of matching command output in several places.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from ..errors import HostError
from .ssh import run


def sh(conn: paramiko.SSHClient, command: str, timeout: float = 120) -> tuple[int, str]:
    """Run ``command``; (exit code, stdout and stderr together, stripped)."""
    code, out, err = run(conn, command, timeout=timeout)
    return code, (out + err).strip()


def cloud_init(conn: paramiko.SSHClient, wait: float = 0) -> str:
    """``done``, ``running``, ``error``, ``disabled`` or ``not run`` (``cloud-init status``), after waiting up to
    ``wait`` seconds on the host for cloud-init to finish. The wait is a shell loop on the result file cloud-init
    writes last (or on the generator's ``enabled`` marker being absent: disabled), so a booting host starts
    Python once (each ``cloud-init status`` costs it ~0.4 CPU-seconds) instead of once per poll."""
    finished = "[ -e /run/cloud-init/result.json ] || [ ! -e /run/cloud-init/enabled ]"
    _, out = sh(conn, f"if timeout {wait:g} sh -c 'until {finished}; do sleep 0.05; done'; then cloud-init status; "
                      "else echo 'status: running'; fi", timeout=wait + 60)
    for line in out.splitlines():
        if line.startswith("status:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cloud_init_failure(conn: paramiko.SSHClient) -> str:
    """What an operator needs to see when cloud-init failed."""
    return sh(conn, "cloud-init status --long; tail -n 25 /var/log/cloud-init-output.log")[1][-2000:]


@dataclass(frozen=True)
class Unit:
    active: str  # ActiveState: active, activating, failed, inactive, ...
    restarts: int  # NRestarts
    age: float  # seconds the main process has lived (0 when none)


def unit(conn: paramiko.SSHClient, name: str, timeout: float = 120) -> Unit:
    _, out = sh(conn, f"systemctl show -p ActiveState -p NRestarts -p ExecMainStartTimestampMonotonic {name}; "
                      "cut -d' ' -f1 /proc/uptime", timeout=timeout)
    *props, uptime = out.splitlines() or ["0"]
    p = dict(line.split("=", 1) for line in props if "=" in line)
    started = int(p.get("ExecMainStartTimestampMonotonic") or 0) / 1e6
    return Unit(active=p.get("ActiveState", "unknown"), restarts=int(p.get("NRestarts") or 0),
                age=float(uptime) - started if started else 0.0)


def wait_running(conn: paramiko.SSHClient, name: str, *, grace: float, stable: float,
                 check: Callable[[], None] = lambda: None) -> Unit:
    """Until ``name`` is active, has not restarted (``systemctl reset-failed`` zeroes the count; a restart does
    not), and its process has lived ``stable`` seconds: a Type=simple unit is "active" the moment its process
    starts, even one that crashes at once. HostError with the unit's log when it restarts, fails or is not up
    within ``grace``."""
    give_up = time.monotonic() + grace
    while True:
        check()
        state = unit(conn, name)
        if state.active == "active" and state.restarts == 0 and state.age >= stable:
            return state
        if state.restarts or state.active == "failed" or time.monotonic() > give_up:
            why = f"restarted {state.restarts} time(s)" if state.restarts else f"{state.active}, not active"
            raise HostError(f"{name} is {why}:\n{unit_log(conn, name)}")
        time.sleep(min(0.3, max(0.05, stable - state.age)) if state.active == "active" else 0.3)


def unit_log(conn: paramiko.SSHClient, name: str) -> str:
    return sh(conn, f"systemctl status --no-pager {name}; journalctl -u {name} -n 20 --no-pager")[1][-1500:]


def tailscale_running(conn: paramiko.SSHClient) -> tuple[bool, str]:
    """(whether the node is logged in and running, ``tailscale status --json`` for the error message)."""
    _, out, err = run(conn, "tailscale status --json", timeout=60)
    try:
        return json.loads(out).get("BackendState") == "Running", out[-500:]
    except ValueError:
        return False, (out + err)[-500:]
