"""IPv6-only servers (``--no-ipv4``): no public IPv4 to pay for, reached on the first address of their IPv6 /64
(cloud.servers.address). That needs this machine to have an IPv6 route to them, checked before anything is created
(GitHub-hosted runners have none)."""

from __future__ import annotations

import ipaddress
import socket

from ..errors import InputError
from ..target import Target

HETZNER_IPV6 = "2a01:4f8::1"  # in Hetzner's own IPv6 block: what a route to Hetzner's servers must reach
LABEL = "ipv4"  # a pool host's address family: `no` on an IPv6-only one, so that a claim takes a host of its own


def label(ipv4: bool) -> dict[str, str]:
    return {LABEL: "yes" if ipv4 else "no"}


def labelled_ipv4(labels: dict[str, str] | None) -> bool:
    """Whether a host labelled ``labels`` has IPv4 (hosts made before the label existed all have)."""
    return (labels or {}).get(LABEL) != "no"


def probe_address(target: Target) -> str:
    """An address in the block the target's IPv6 servers live in."""
    if not target.local:
        return HETZNER_IPV6
    from localcloud import client as localcloud

    return f"{localcloud.ULA_PREFIX}::2"


def require_ipv6_route(target: Target, address: str | None = None) -> None:
    """InputError unless this machine routes IPv6 to the target's servers from an address they can answer."""
    address = address or probe_address(target)
    try:
        source = route_source(address)
    except OSError as exc:
        raise _no_route(f"this machine has no IPv6 route to {address} ({exc.strerror or exc})") from None
    if not target.local and not ipaddress.ip_address(source).is_global:
        raise _no_route(f"this machine's IPv6 route to {address} leaves from {source}, a private address Hetzner's "
                        "servers cannot answer")


def route_source(address: str) -> str:
    """The address this machine's route to ``address`` leaves from (OSError without a route): a UDP connect sends
    nothing, it asks the kernel for a route and the source address it would use."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((address, 22))
        return str(sock.getsockname()[0]).split("%")[0]


def _no_route(why: str) -> InputError:
    return InputError(f"--no-ipv4: {why}, so it could not reach IPv6-only hosts (GitHub-hosted "
                      "runners have no IPv6): run imagekit where IPv6 works (`ip -6 route` shows a default route and "
                      "`ip -6 addr` a global address), or keep IPv4 (drop --no-ipv4, IMAGEKIT_IPV4=1)")
