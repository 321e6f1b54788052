"""``invoke cost``: what the project runs costs per hour and per month, gross, from the API's /pricing alone: the
fleet (agents, replacements a roll is making among them), the warm pool, jobs, builders, other servers (imagekit's
round trips and benches, and servers imagekit did not make: the bill is the project's), snapshots' storage (each
snapshot's image_size in GB at the per-GB-month price; per hour that over 730 hours) and Primary IPv4s; what
IPv6-only servers save (an IPv4 each); and where the project stands against the caps (steps/caps.py), with the
excess when two runs passed a cap at once."""

from __future__ import annotations

from typing import Any, TypedDict

from hcloud.servers import BoundServer

from ..cloud import api
from ..cloud.pricing import FREE, Pricing, Rate
from ..cloud.servers import has_ipv4
from ..steps import caps
from ..target import Target

GROUPS = {"agent": "fleet", "pool": "pool", "job": "jobs", "builder": "builders"}  # role label -> group


class Line(TypedDict):
    count: int
    hourly: float
    monthly: float


def project_cost(target: Target) -> dict[str, Any]:
    client = api.connect(target)
    pricing = Pricing.read(client)
    now = caps.running(client, pricing)
    rates: dict[str, list[Rate]] = {group: [] for group in (*GROUPS.values(), "other_servers", "snapshots",
                                                            "primary_ipv4s")}
    for server in now.servers:
        rates[_group(server)].append(caps.server_rate(pricing, server))
    rates["primary_ipv4s"] = [caps.ipv4_rate(pricing, ip) for ip in now.ipv4s]
    # What IPv6-only servers (--no-ipv4) do not pay: a Primary IPv4 each in its location (not in the total).
    saved = [pricing.primary_ip("ipv4", s.location.name if s.location else None) for s in now.servers
             if not has_ipv4(s)]
    snapshots = client.images.get_all(type=["snapshot"])
    gigabytes = sum(image.image_size or 0.0 for image in snapshots)
    rates["snapshots"] = [pricing.snapshots(gigabytes)]
    groups: dict[str, Any] = {name: _line(found) for name, found in rates.items()}
    groups["snapshots"].update(count=len(snapshots), gb=round(gigabytes, 3))
    total = sum((rate for found in rates.values() for rate in found), FREE)
    limits = caps.Caps.read()
    return {"currency": pricing.currency, "prices": "gross", "vat_rate": pricing.vat_rate, "groups": groups,
            "ipv4_saved": _line(saved),
            "total": {"hourly": round(total.hourly, 6), "monthly": round(total.monthly, 4)},
            "caps": {"max_servers": limits.servers, "servers": len(now.servers),
                     "servers_over": _over(len(now.servers), limits.servers),
                     "max_hourly": limits.hourly, "hourly": round(now.rate.hourly, 6),  # servers and IPv4s
                     "hourly_over": _over(round(now.rate.hourly, 6), limits.hourly)}}


def _group(server: BoundServer) -> str:
    labels = server.labels or {}
    return GROUPS.get(labels.get("role", ""), "other_servers") if labels.get("managed-by") == "imagekit" \
        else "other_servers"


def _line(rates: list[Rate]) -> Line:
    total = sum(rates, FREE)
    return {"count": len(rates), "hourly": round(total.hourly, 6), "monthly": round(total.monthly, 4)}


def _over(value: float, cap: float | None) -> float | None:
    """How far ``value`` is past ``cap``; None within it (or without a cap)."""
    return round(value - cap, 6) if cap is not None and value > cap else None
