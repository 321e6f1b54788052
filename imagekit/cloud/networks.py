"""Private networks (``--network``, ``--ssh-via``): servers attached to existing networks when they are created,
and with ``--ssh-via private`` reached on their address there (cloud.servers.address, by the server's ``ssh-via``
label) by an imagekit that runs inside the network itself: a bastion or a self-hosted runner (GitHub-hosted runners
are on no network of yours). Whether this machine is on the network is checked before anything is created."""

from __future__ import annotations

import ipaddress
from typing import Any

from hcloud import Client
from hcloud.networks import BoundNetwork
from hcloud.servers import BoundServer

from ..errors import InputError
from . import family, lookups
from .api import known
from .servers import SSH_VIA
from .spec import ServerSpec

VIAS = ("public", "private")


def check(idents: tuple[str, ...], via: str) -> None:
    """What is wrong with ``--network`` and ``--ssh-via`` alone (no API needed)."""
    if via not in VIAS:
        raise InputError(f"--ssh-via {via!r}: choose public (the hosts' public address) or private (their address "
                         "on --network, from a machine inside that network)")
    if via == "private" and not idents:
        raise InputError("--ssh-via private reaches hosts on their private network: name it with --network NAME "
                         "(or IMAGEKIT_NETWORK), or drop --ssh-via private")


def attach(client: Client, idents: tuple[str, ...], via: str) -> tuple[tuple[BoundNetwork, ...],
                                                                         BoundNetwork | None]:
    """The networks the servers join (looked up once) and the one imagekit reaches them on (the first, with
    ``--ssh-via private``; None: their public address), after checking this machine is on it."""
    check(idents, via)
    found = lookups.networks(client, idents)
    if via == "public":
        return found, None
    require_route(found[0])
    return found, found[0]


def require_route(network: BoundNetwork) -> None:
    """InputError unless this machine's route to the network's gateway (its range's first address) leaves from an
    address in the range: a default route out to elsewhere does not reach servers on the network."""
    ip_range = ipaddress.ip_network(known(network.ip_range, f"network {network.id}'s range"))
    try:
        source: str | None = family.route_source(str(ip_range[1]))
    except OSError:
        source = None
    if source is None or ipaddress.ip_address(source) not in ip_range:
        why = f" (its route there leaves from {source}, outside the network)" if source else ""
        raise InputError(f"--ssh-via private: this machine has no route to {ip_range}{why}: run imagekit on a host in "
                         f"network {network.name} (a bastion or a self-hosted runner; GitHub-hosted runners are on "
                         "no network of yours), or reach the hosts on their public address (--ssh-via public)")


def same(server: BoundServer, spec: ServerSpec) -> bool:
    """Whether ``server`` (a pool host) is on the spec's networks, reached as the spec's servers are: the hosts a
    run with these networks may claim."""
    return ({n.network.id for n in server.private_net or []} == {n.id for n in spec.networks}
            and (server.labels or {}).get(SSH_VIA) == (str(spec.ssh_network.id) if spec.ssh_network else None))


def kept(server: BoundServer) -> dict[str, Any]:
    """The spec fields of a server that replaces ``server`` (a roll): its networks, reached as it was."""
    attached = tuple(n.network for n in server.private_net or [])
    via = (server.labels or {}).get(SSH_VIA)
    return {"networks": attached, "ssh_network": next((n for n in attached if str(n.id) == via), None)}
