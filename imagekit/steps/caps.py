"""Caps on what a project may run, checked before a command creates anything: ``IMAGEKIT_MAX_SERVERS`` (servers in
the project, imagekit's or not) and ``IMAGEKIT_MAX_HOURLY`` (what the project's servers and Primary IPv4s cost per
hour, gross, in the API's currency, from its /pricing). A command's new servers are added to what already runs;
one that would pass a cap is refused, naming the cap, the counts and the fixes. Two commands checked at the same
moment both see the project without the other's servers, so both may pass: ``invoke cost`` shows the excess."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from hcloud import Client
from hcloud.primary_ips import BoundPrimaryIP
from hcloud.servers import BoundServer

from .. import settings
from ..cloud.api import known
from ..cloud.pricing import FREE, Pricing, Rate
from ..cloud.servers import type_of
from ..cloud.spec import ServerSpec
from ..errors import InputError

Number = TypeVar("Number", int, float)


class CapExceeded(InputError):
    """A cap would be passed: nothing was created."""


@dataclass(frozen=True)
class Caps:
    servers: int | None
    hourly: float | None

    @staticmethod
    def read() -> Caps:
        return Caps(_setting("IMAGEKIT_MAX_SERVERS", int, "a whole number of servers, 0 or more"),
                    _setting("IMAGEKIT_MAX_HOURLY", float, "an amount per hour in the API's currency, gross"))


@dataclass(frozen=True)
class Running:
    """What the project runs, and what it costs per hour and per month."""

    servers: list[BoundServer]
    ipv4s: list[BoundPrimaryIP]
    rate: Rate


def running(client: Client, pricing: Pricing) -> Running:
    servers = [s for s in client.servers.get_all() if s.status != "deleting"]
    ipv4s = [ip for ip in client.primary_ips.get_all() if ip.type == "ipv4"]
    rate = sum((server_rate(pricing, s) for s in servers), FREE)
    return Running(servers, ipv4s, sum((ipv4_rate(pricing, ip) for ip in ipv4s), rate))


def server_rate(pricing: Pricing, server: BoundServer) -> Rate:
    return pricing.server(known(type_of(server).name, f"server {server.id}'s type"),
                          server.location.name if server.location else None)


def ipv4_rate(pricing: Pricing, ip: BoundPrimaryIP) -> Rate:
    return pricing.primary_ip("ipv4", ip.location.name if ip.location else None)


def check(client: Client, command: str, new: int, spec: ServerSpec) -> None:
    """Refuse ``new`` servers of ``spec`` when they would pass a cap; no request at all without caps."""
    caps = Caps.read()
    if new <= 0 or (caps.servers is None and caps.hourly is None):
        return
    pricing = Pricing.read(client)
    now = running(client, pricing)
    fix = f"nothing was created. Delete what is not needed (`invoke cost` shows what runs), ask {command} for fewer"
    if caps.servers is not None and len(now.servers) + new > caps.servers:
        raise CapExceeded(f"IMAGEKIT_MAX_SERVERS is {caps.servers} and the project has {len(now.servers)} "
                          f"server(s): {command}'s {new} new server(s) would make {len(now.servers) + new}; {fix}, "
                          "or raise IMAGEKIT_MAX_SERVERS")
    if caps.hourly is not None:
        each = max((pricing.server(known(spec.server_type.name, "the server type's name"),
                                   location.name if location else None) for location in spec.locations),
                   key=lambda r: r.hourly)
        each += pricing.primary_ip("ipv4", None) if spec.ipv4 else FREE
        total = now.rate.hourly + new * each.hourly
        if total > caps.hourly:
            cur = pricing.currency
            raise CapExceeded(
                f"IMAGEKIT_MAX_HOURLY is {caps.hourly:g} {cur}/hour (gross) and the project's {len(now.servers)} "
                f"server(s) and {len(now.ipv4s)} Primary IPv4(s) cost {now.rate.hourly:.4f}: {command}'s {new} new "
                f"server(s) at {each.hourly:.4f} each would make {total:.4f} {cur}/hour; {fix} or a cheaper "
                "--server-type, or raise IMAGEKIT_MAX_HOURLY")


def _setting(name: str, kind: type[Number], what: str) -> Number | None:
    value = settings.get(name)
    if value is None:
        return None
    try:
        parsed = kind(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed < 0:
        raise InputError(f"{name} {value!r}: give {what} (or unset it for no cap)")
    return parsed
