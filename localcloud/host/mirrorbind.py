"""Where apt-cacher-ng listens: loopback and the local clouds' bridge addresses (IPv4 and IPv6), never every address.

Debian's defaults make it listen on ``0.0.0.0:3142`` and ``[::]:3142`` with an open report page: an open proxy
on the operator's network. Every local cloud on a host (one per bridge) shares the host's one apt-cacher-ng,
so its bind list lives in one file it reads after its own configuration, ``zzz_localcloud.conf``, kept under a
lock: each local cloud adds its bridge's addresses when it starts, addresses no interface carries any more go,
the others stay. apt-cacher-ng is started when it does not run and restarted only when it does not serve this
bridge yet (another cloud's guests then miss it for a second; apt retries). The first list also takes the
addresses of the bridges on the host then, so that local clouds of earlier versions, which do not add
themselves, keep their mirror. ``ForceManaged`` keeps it to the mirrors it maps (Debian's), not any host a
guest names, and its report page is off (403).

Left as Debian installed it (every address: an open proxy), it is restarted with the list the same way.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

from ..state.durable import write_atomic
from .hostcmd import run

log = logging.getLogger("localcloud")

CONF_DIR = Path("/etc/apt-cacher-ng")
CONF_NAME = "zzz_localcloud.conf"  # apt-cacher-ng reads every *.conf there in name order: after Debian's
INIT = "/etc/init.d/apt-cacher-ng"
LOOPBACK = ("127.0.0.1", "::1")
WILDCARD = ("0.0.0.0", "*", "[::]", "::")


def render(addresses: list[str]) -> str:
    """apt-cacher-ng's settings; an IPv6 address other than ``::1`` in brackets (bare, it binds none of them)."""
    shown = [f"[{a}]" if ":" in a and a != "::1" else a for a in addresses]
    return ("# Written by imagekit's local clouds (localcloud/mirrorbind.py): apt-cacher-ng on loopback and their\n"
            "# bridges only, for Debian's mirrors only, without its report page. Each local cloud adds its bridge.\n"
            f"BindAddress: {' '.join(shown)}\nForceManaged: 1\nReportPage:\n")


def listed(text: str) -> list[str]:
    m = re.search(r"^BindAddress:(.*)$", text, re.M)
    return [a.strip("[]") for a in m[1].split()] if m else []


def confine(own: Sequence[str], port: int, conf_dir: Path = CONF_DIR, init: str = INIT) -> None:
    """Make apt-cacher-ng (on ``port``, configured in ``conf_dir``, run by ``init``) serve the addresses ``own``
    and loopback, keeping every other local cloud's address."""
    conf = conf_dir / CONF_NAME
    with open(conf_dir / f".{CONF_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = conf.read_text() if conf.exists() else None
        kept = set(listed(before)) if before is not None else _addresses("bridge")
        present = _addresses()
        wanted = render([*LOOPBACK, *sorted({a for a in kept if a in present} - set(LOOPBACK) | set(own))])
        if wanted != before:
            write_atomic(conf, wanted, 0o644)
        serving = _listening(port)
        if not serving:
            run([init, "start"])
        elif set(serving) & set(WILDCARD) or not set(own) <= set(serving):
            # On every address (Debian's default: an open proxy on the operator's network), or not on this
            # bridge yet: restarted with the list, which holds every local cloud's bridge.
            log.info("apt-cacher-ng listens on %s: restarting it on %s", ", ".join(serving), conf)
            run([init, "restart"])
        else:
            return
        _wait_serving(own, port)


def _addresses(kind: str | None = None) -> set[str]:
    """IPv4 and IPv6 addresses (not link-local) of this host's interfaces (its bridges only, ``kind="bridge"``)."""
    cmd = ["ip", "-j", "addr", "show"] + (["type", kind] if kind else [])
    return {a["local"] for link in json.loads(run(cmd).stdout or "[]") for a in link.get("addr_info", [])
            if a.get("scope") != "link"}


def _listening(port: int) -> list[str]:
    """The addresses apt-cacher-ng listens on at ``port`` (IPv6 ones without their brackets)."""
    out = run(["ss", "-Hltnp", f"sport = :{port}"]).stdout
    return [line.split()[3].rsplit(":", 1)[0].strip("[]") for line in out.splitlines() if '"apt-cacher-ng"' in line]


def _wait_serving(own: Sequence[str], port: int, timeout: float = 20) -> None:
    """Until apt-cacher-ng serves every address of ``own``; the first (the bridge's IPv4) it must serve, the others
    a local cloud of an earlier version may have dropped from the list meanwhile (it knew IPv4 only): a warning."""
    deadline = time.monotonic() + timeout
    while not set(own) <= set(serving := _listening(port)):
        if time.monotonic() > deadline:
            if own[0] not in serving:
                raise RuntimeError(f"apt-cacher-ng did not start listening on {own[0]} port {port}")
            log.warning("apt-cacher-ng does not listen on %s (port %s): guests reach the mirror over IPv4 only",
                        ", ".join(a for a in own if a not in serving), port)
            return
        time.sleep(0.2)
