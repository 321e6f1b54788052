"""A new server's ``public_net`` as the real API takes it: IPv4 and IPv6 on or off, or the Primary IPs to use.

``{"enable_ipv4": false}`` makes a server without an IPv4 address of its own (it keeps its IPv6 /64 and reaches
the metadata service from a link-local address); ``{"ipv4": <id>}`` uses that unassigned Primary IP of the
server's location instead of a new one. Checked before anything is created; ``attach`` then gives the server its
addresses, under the store's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import primaryips
from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input


@dataclass(frozen=True)
class PublicNet:
    wanted: dict[str, bool]  # type -> an address of that type
    given: dict[str, dict]  # type -> the Primary IP record to use


def plan(cloud: Cloud, body: dict, location: str) -> PublicNet:
    net = body.get("public_net")
    if net is None:
        net = {}
    if not isinstance(net, dict):
        raise invalid_input("public_net", "public_net must be an object")
    wanted, given = {}, {}
    for kind in ("ipv4", "ipv6"):
        enable = net.get(f"enable_{kind}", True)
        if not isinstance(enable, bool):
            raise invalid_input(f"public_net.enable_{kind}", f"enable_{kind} must be a boolean")
        wanted[kind] = enable
        ident = net.get(kind)
        if ident is None:
            continue
        if not enable:
            raise invalid_input(f"public_net.{kind}", f"{kind} names a Primary IP but enable_{kind} is false")
        record = cloud.get("primary_ips", ident, "primary IP") if isinstance(ident, int) and not isinstance(
            ident, bool) else None
        if record is None or record["type"] != kind:
            raise invalid_input(f"public_net.{kind}", f"{kind} must be the id of a Primary IP of type {kind}")
        if record["assignee_id"] is not None:
            raise APIError("primary_ip_assigned", f"primary IP {ident} is assigned to server {record['assignee_id']}")
        if record["location"] != location:
            raise invalid_input(f"public_net.{kind}", f"primary IP {ident} is in {record['location']}, not in "
                                                      f"{location}")
        given[kind] = record
    if not any(wanted.values()) and not body.get("networks"):
        raise invalid_input("public_net", "a server needs a public IPv4, a public IPv6 or a network")
    return PublicNet(wanted, given)


def attach(cloud: Cloud, server: dict, net: PublicNet) -> None:
    """Give ``server`` (a new record) its Primary IPs; the caller holds the store's lock."""
    server.update(ipv4_id=None, ipv6_id=None, address=None, ipv6=None)
    for kind, enabled in net.wanted.items():
        if enabled:
            record = net.given.get(kind) or primaryips.new(cloud.store, kind, server["location"], auto_delete=True)
            primaryips.assign(server, record)
