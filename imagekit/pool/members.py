"""What a pool host is: a server labelled ``role=pool`` (with its profile and the id of the operator's key that
reaches it), from a snapshot of the profile, carrying its fill's lease (cloud/leases.py) while ``pool fill`` boots
and checks it. Without a lease, running and with a pinned host key, it is ready to be claimed; a claim renames and
relabels it into an agent, so it stops being a member the moment it is taken.

The pool's size is what the last ``pool fill --size`` asked for (``pool drain``: 0), kept as the label
``pool-size`` on the profile's firewall (the one resource of a profile imagekit keeps between runs): recycling
(pool/recycle.py) tops the pool up to it and no further."""

from __future__ import annotations

from typing import TypedDict

from hcloud import Client
from hcloud.firewalls import BoundFirewall
from hcloud.servers import BoundServer

from ..cloud import api, family, leases
from ..cloud.servers import type_of
from ..host import hostkey
from ..steps.firewall import profile_labels

ROLE = "pool"
KEY_LABEL = "pool-key"  # the operator's SSH key on the host: only a run holding its private half can claim it
NAME_PREFIX = "imagekit-pool-"
SIZE_LABEL = "pool-size"


class Cost(TypedDict):
    """What servers cost while they exist, gross, from the API's prices."""

    hosts: int
    hourly_gross: float
    monthly_gross: float
    currency: str


def labels(profile: str, key_id: int, **extra: str) -> dict[str, str]:
    return api.labels(role=ROLE, profile=profile, **{KEY_LABEL: str(key_id)}, **extra)


def members(client: Client, profile: str | None = None, ipv4: bool | None = None) -> list[BoundServer]:
    """Every pool host (of ``profile``; with IPv4, or IPv6-only: a pool per address family), oldest first;
    deletions in flight left out."""
    found = client.servers.get_all(label_selector=api.selector(role=ROLE, **({"profile": profile} if profile else {})))
    return sorted((s for s in found if s.status != "deleting"
                   and (ipv4 is None or family.labelled_ipv4(s.labels) == ipv4)), key=lambda s: (s.created, s.id))


def firewalls(client: Client, profile: str) -> list[BoundFirewall]:
    """The profile's firewall (steps.firewall.profile_firewall), when there is one."""
    return client.firewalls.get_all(label_selector=api.selector(**profile_labels(profile)))


def size(client: Client, profile: str) -> int:
    """The pool's size: what the last ``pool fill`` of the profile asked for; 0 when none did (or it was drained)."""
    value = next(((f.labels or {}).get(SIZE_LABEL) for f in firewalls(client, profile)), None)
    return int(value) if value is not None and value.isdigit() else 0


def record_size(client: Client, profile: str, size_: int) -> None:
    """``size_`` as the pool's size, on the profile's firewall (there is none before a fill or provision made it)."""
    for firewall in firewalls(client, profile):
        firewall.update(labels={**(firewall.labels or {}), SIZE_LABEL: str(size_)})


def ready(server: BoundServer) -> bool:
    """Booted, SSH-checked (its fill's lease is off) and running."""
    return server.status == "running" and leases.until(server) is None


def image_id(server: BoundServer) -> int | None:
    return server.image.id if server.image is not None else None


def claimable_host(server: BoundServer, image_id_: int | None, key_id: int | None) -> bool:
    """Ready, from image ``image_id_``, reached by the key ``key_id``, its host key pinned."""
    labels = server.labels or {}
    return ready(server) and image_id(server) == image_id_ and labels.get(KEY_LABEL) == str(key_id) \
        and hostkey.LABEL in labels


def cost(servers: list[BoundServer]) -> Cost:
    """What the hosts cost while they exist: each type's gross price in each host's location, from the API."""
    hourly = monthly = 0.0
    for server in servers:
        where = server.location.name if server.location else None
        price = next((p for p in type_of(server).prices or [] if p.get("location") == where), None)
        if price is not None:
            hourly += float(price["price_hourly"]["gross"])
            monthly += float(price["price_monthly"]["gross"])
    return {"hosts": len(servers), "hourly_gross": round(hourly, 4), "monthly_gross": round(monthly, 2),
            "currency": "EUR"}


def describe_cost(c: Cost) -> str:
    return (f"the pool's {c['hosts']} host(s) cost {c['hourly_gross']:.4f} {c['currency']}/hour, "
            f"{c['monthly_gross']:.2f} {c['currency']}/month gross (Hetzner bills a server whether it runs or not)")
