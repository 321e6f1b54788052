"""The host side of the local cloud: its bridge and its package mirror.

The bridge has an address but no uplink: guests reach only the host (the API, the
apt-cacher-ng mirror, the stand-in package repository), never the outside world.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from ..paths import BRIDGE, HOST_ADDRESS, MIRROR_PORT
from .hostcmd import run

DEBIAN_BACKEND = "http://deb.debian.org/debian/\n"


def ensure_bridge() -> None:
    if run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE]).stdout
    if f" {HOST_ADDRESS}/" not in addrs:
        run(["ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_mirror() -> None:
    """Configure and start apt-cacher-ng as the provider's Debian mirror."""
    if not shutil.which("apt-cacher-ng") and not Path("/usr/sbin/apt-cacher-ng").exists():
        raise RuntimeError("apt-cacher-ng is not installed: run `apt-get install apt-cacher-ng` (see README)")
    backends = Path("/etc/apt-cacher-ng/backends_debian")
    if not backends.exists() or backends.read_text() != DEBIAN_BACKEND:
        backends.write_text(DEBIAN_BACKEND)
    if not _port_open("127.0.0.1", MIRROR_PORT):
        run(["/etc/init.d/apt-cacher-ng", "start"])
        deadline = time.monotonic() + 20
        while not _port_open("127.0.0.1", MIRROR_PORT):
            if time.monotonic() > deadline:
                raise RuntimeError("apt-cacher-ng did not start listening on port 3142")
            time.sleep(0.2)


def mirror_url() -> str:
    return f"http://{HOST_ADDRESS}:{MIRROR_PORT}"


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
