"""The host side of the local cloud: its bridge and its package mirror.

The bridge has an address but no uplink: guests reach only the host (the API, the
apt-cacher-ng mirror, the stand-in package repository), never the outside world. apt-cacher-ng
listens there and on loopback only (``mirrorbind``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..paths import BRIDGE, HOST_ADDRESS, MIRROR_PORT
from . import mirrorbind
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
    """Configure and start apt-cacher-ng as the provider's Debian mirror, on loopback and the bridge only."""
    if not shutil.which("apt-cacher-ng") and not Path("/usr/sbin/apt-cacher-ng").exists():
        raise RuntimeError("apt-cacher-ng is not installed: run `apt-get install apt-cacher-ng` (or `bash .ci/setup`)")
    backends = Path("/etc/apt-cacher-ng/backends_debian")
    if not backends.exists() or backends.read_text() != DEBIAN_BACKEND:
        backends.write_text(DEBIAN_BACKEND)
    mirrorbind.confine(HOST_ADDRESS, MIRROR_PORT)


def mirror_url() -> str:
    return f"http://{HOST_ADDRESS}:{MIRROR_PORT}"
