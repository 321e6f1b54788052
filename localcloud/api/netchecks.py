"""A private network's ranges, subnets and routes checked as Hetzner checks them, before anything changes.

Ranges are private IPv4 (RFC 1918) in CIDR notation without host bits; a network spans at least a /24, a
subnet at least a /30 inside it; subnets and routes' destinations must not overlap each other; a route's
gateway is an address of the network other than its own gateway (the network's first address) and Hetzner's
public gateway 172.31.1.1. Subnets are of type ``cloud`` (``server`` is its deprecated name); ``vswitch``
subnets couple Robot servers, which the local cloud has none of.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..engine import catalog
from ..engine.networks import gateway
from ..errors import APIError, invalid_input

PRIVATE = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
PUBLIC_GATEWAY = ipaddress.ip_address("172.31.1.1")
ZONES = sorted({str(loc["network_zone"]) for loc in catalog.LOCATIONS})
MIN_NETWORK, MIN_SUBNET = 24, 30  # the largest prefix (smallest size) of a network and of a subnet
DEFAULT = "0.0.0.0/0"  # a route's destination that Hetzner allows beside private ranges


def cidr(value: Any, field: str, *, private: bool = True) -> ipaddress.IPv4Network:
    """A private IPv4 range in CIDR notation (``10.0.0.0/16``), or invalid_input naming ``field``."""
    try:
        net = ipaddress.IPv4Network(value if isinstance(value, str) and "/" in value else "")
    except ValueError:
        raise invalid_input(field, f"{value!r} is not an IPv4 range in CIDR notation without host bits "
                                   "(such as 10.0.0.0/16)") from None
    if private and not any(net.subnet_of(p) for p in PRIVATE):
        raise invalid_input(field, f"{net} is not a private range (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, "
                                   "192.168.0.0/16)")
    return net


def network_range(value: Any, field: str = "ip_range") -> str:
    net = cidr(value, field)
    if net.prefixlen > MIN_NETWORK:
        raise invalid_input(field, f"a network spans at least a /{MIN_NETWORK}; {net} is smaller")
    return str(net)


def _used(network: dict) -> list[tuple[str, ipaddress.IPv4Network]]:
    """What a new subnet or route must not overlap: subnets and routes' destinations (a default route overlaps
    everything, and is only one)."""
    return ([(f"subnet {s['ip_range']}", ipaddress.IPv4Network(s["ip_range"])) for s in network["subnets"]]
            + [(f"route to {r['destination']}", ipaddress.IPv4Network(r["destination"])) for r in network["routes"]
               if r["destination"] != DEFAULT])


def subnet(network: dict, body: Any, field: str = "subnets") -> dict:
    """A new subnet of ``network`` (not added) from ``body``; its range is the first free /24 when not given."""
    if not isinstance(body, dict):
        raise invalid_input(field, "a subnet is an object with type, network_zone and optionally ip_range")
    if body.get("type") not in ("cloud", "server", "vswitch"):
        raise invalid_input(field, "type must be cloud (or its deprecated name server, or vswitch)")
    if body["type"] == "vswitch":
        raise APIError("unsupported_error", "vswitch subnets couple Robot servers, which the local cloud has none "
                       "of; use a subnet of type cloud")
    zone = body.get("network_zone")
    if zone not in ZONES:
        raise invalid_input(field, f"network_zone must be one of {', '.join(ZONES)}")
    if any(s["network_zone"] != zone for s in network["subnets"]):
        raise invalid_input(field, "all subnets of a network are in one network zone")
    outer = ipaddress.IPv4Network(network["ip_range"])
    taken = _used(network)
    if body.get("ip_range") is None:
        free = (n for n in (outer.subnets(new_prefix=MIN_NETWORK) if outer.prefixlen <= MIN_NETWORK else [outer])
                if not any(n.overlaps(t) for _, t in taken))
        net = next(free, None)
        if net is None:
            raise invalid_input(field, f"no /{MIN_NETWORK} is free in {outer}: give an ip_range")
    else:
        net = cidr(body["ip_range"], field)
        if not net.subnet_of(outer):
            raise invalid_input(field, f"subnet {net} is not inside the network's range {outer}")
        if net.prefixlen > MIN_SUBNET:
            raise invalid_input(field, f"a subnet spans at least a /{MIN_SUBNET}; {net} is smaller")
        for what, t in taken:
            if net.overlaps(t):
                raise invalid_input(field, f"subnet {net} overlaps the network's {what}")
    return {"type": body["type"], "ip_range": str(net), "network_zone": zone, "gateway": gateway(network),
            "vswitch_id": None}


def route(network: dict, body: Any, field: str = "routes") -> dict:
    """A new route of ``network`` (not added) from ``body``."""
    if not isinstance(body, dict):
        raise invalid_input(field, "a route is an object with destination and gateway")
    default = body.get("destination") == DEFAULT
    destination = ipaddress.IPv4Network(DEFAULT) if default else cidr(body.get("destination"), field)
    try:
        via = ipaddress.IPv4Address(body.get("gateway") if isinstance(body.get("gateway"), str) else "")
    except ValueError:
        raise invalid_input(field, f"gateway {body.get('gateway')!r} is not an IPv4 address") from None
    if (not default and PUBLIC_GATEWAY in destination) or via == PUBLIC_GATEWAY:
        raise invalid_input(field, "172.31.1.1 is the gateway of servers' public interfaces")
    if via not in ipaddress.IPv4Network(network["ip_range"]) or str(via) == gateway(network):
        raise invalid_input(field, f"gateway {via} must be an address of the network {network['ip_range']} other "
                                   f"than its own gateway {gateway(network)}")
    if default and any(r["destination"] == DEFAULT for r in network["routes"]):
        raise invalid_input(field, "the network has a default route already")
    for what, t in [] if default else _used(network):
        if destination.overlaps(t):
            raise invalid_input(field, f"destination {destination} overlaps the network's {what}")
    return {"destination": str(destination), "gateway": str(via)}


def new_network(body: dict) -> dict:
    """The range, subnets and routes of a network to create, each checked against those before it."""
    network: dict = {"ip_range": network_range(body.get("ip_range")), "subnets": [], "routes": []}
    for kind, check in (("subnets", subnet), ("routes", route)):
        items = body.get(kind)
        if items is None:
            continue
        if not isinstance(items, list):
            raise invalid_input(kind, f"{kind} must be a list")
        for i, item in enumerate(items):
            network[kind].append(check(network, item, f"{kind}[{i}]"))
    return network


def larger_range(network: dict, value: Any) -> str:
    """change_ip_range: the same start, a shorter prefix (ranges only grow)."""
    new, old = ipaddress.IPv4Network(network_range(value)), ipaddress.IPv4Network(network["ip_range"])
    if new.network_address != old.network_address or new.prefixlen >= old.prefixlen:
        raise invalid_input("ip_range", f"a network's range can only grow at its end: {old.network_address} with a "
                                        f"prefix shorter than /{old.prefixlen}")
    return str(new)
