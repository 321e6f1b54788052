"""The host side of the local cloud: its bridge and its package mirror.

The bridge has an address but no uplink: guests reach only the host (the API, the
apt-cacher-ng mirror, the stand-in package repository), never the outside world. apt-cacher-ng
listens there and on loopback only (``mirrorbind``).

As on Hetzner, a server's IPv4 is a /32 with the gateway on-link and its IPv6 a /64 routed to it with fe80::1 as
the gateway: the bridge holds the IPv4 gateway, ``fe80::1``, the host's IPv6 (``::1`` of the cloud's ULA /48, which
is on-link here) and the link-local /24 that servers without IPv4 reach the metadata service from. Traffic between
two guests is routed through the host, so the bridge forwards (this bridge only, in and out of itself: the guest
table of ``metadata.redirect`` drops whatever would leave it).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import shutil
import socket
import struct
from pathlib import Path

from ..paths import BRIDGE, GATEWAY6, HOST_ADDRESS, HOST_ADDRESS6, LINK_LOCAL_PREFIX, MIRROR_PORT, ULA_PREFIX
from . import mirrorbind
from .hostcmd import run

DEBIAN_BACKEND = "http://deb.debian.org/debian/\n"


def ensure_bridge() -> None:
    if run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "link", "set", "dev", BRIDGE, "address", bridge_mac()])
    _sysctl(f"net/ipv6/conf/{BRIDGE}/disable_ipv6", "0")
    addrs = run(["ip", "-o", "addr", "show", "dev", BRIDGE]).stdout
    for address in (f"{HOST_ADDRESS}/24", f"{LINK_LOCAL_PREFIX}.1/24", f"{HOST_ADDRESS6}/64", f"{GATEWAY6}/64"):
        if f" {address} " not in addrs:
            run(["ip", "addr", "add", address, "dev", BRIDGE, *(["nodad"] if ":" in address else [])])
    run(["ip", "link", "set", BRIDGE, "up"])
    run(["ip", "-6", "route", "replace", f"{ULA_PREFIX}::/48", "dev", BRIDGE])
    _sysctl(f"net/ipv4/conf/{BRIDGE}/forwarding", "1")
    _sysctl(f"net/ipv6/conf/{BRIDGE}/force_forwarding", "1")


def bridge_mac() -> str:
    """The bridge's own MAC, fixed (the gateway's, as guests see it). A bridge left to itself takes the lowest MAC
    of its ports: each guest that came or went with a lower one changed it under the others, whose cached
    gateway then answered nothing until their neighbour discovery noticed (seconds to a minute)."""
    digest = hashlib.sha256(BRIDGE.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))  # locally administered, unicast


def _sysctl(key: str, value: str) -> None:
    try:
        Path("/proc/sys", key).write_text(value)
    except OSError as exc:
        raise RuntimeError(f"cannot set {key.replace('/', '.')} = {value} ({exc}): the local cloud's guests need it "
                           "(IPv6 on the bridge, routing between guests; kernel 6.17+ for force_forwarding)") from None


def ensure_mirror() -> None:
    """Configure and start apt-cacher-ng as the provider's Debian mirror, on loopback and the bridge only."""
    if not shutil.which("apt-cacher-ng") and not Path("/usr/sbin/apt-cacher-ng").exists():
        raise RuntimeError("apt-cacher-ng is not installed: run `apt-get install apt-cacher-ng` (or `bash .ci/setup`)")
    backends = Path("/etc/apt-cacher-ng/backends_debian")
    if not backends.exists() or backends.read_text() != DEBIAN_BACKEND:
        backends.write_text(DEBIAN_BACKEND)
    mirrorbind.confine([HOST_ADDRESS, HOST_ADDRESS6], MIRROR_PORT)


def mirror_url() -> str:
    return f"http://{HOST_ADDRESS}:{MIRROR_PORT}"


SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17


def checksum_in_software(port: str) -> None:
    """Frames the host sends out of ``port`` carry complete UDP checksums (``ethtool -K <port> tx off``, without
    ethtool). The host's own frames (dnsmasq's DHCP answers) leave the bridge with the checksum left to the
    hardware, which a veth never computes: a guest's kernel says so to a packet socket in ancillary data, which
    qemu-user does not pass on, so an arm guest's dhclient would drop every answer as a bad checksum."""
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
    request = struct.pack("16sP16x", port.encode(), ctypes.addressof(value))  # struct ifreq, 40 bytes
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
