"""Servers once they exist: the address imagekit talks to a server on, its firewalls, its type and architecture,
and deleting servers (each deletion waited for, so that a command ends with its servers gone, not going)."""

from __future__ import annotations

import ipaddress

from hcloud import Client
from hcloud.firewalls import BoundFirewall
from hcloud.server_types import BoundServerType
from hcloud.servers import BoundServer

from . import actions
from .api import known

DELETE_TIMEOUT = 300
SSH_VIA = "ssh-via"  # label: the id of the private network imagekit reaches the server on (--ssh-via private)


def address(server: BoundServer) -> str | None:
    """The address imagekit reaches ``server`` on: its address on the network its ``ssh-via`` label names (made
    with --ssh-via private), else its public IPv4, else (an IPv6-only server) the first address of its IPv6
    network, which Hetzner configures on the server; None while it has none of these."""
    if via := (server.labels or {}).get(SSH_VIA):
        return private_address(server, via)
    net = server.public_net
    if net is not None and net.ipv4 is not None and net.ipv4.ip:
        return net.ipv4.ip
    if net is not None and net.ipv6 is not None and net.ipv6.ip:
        return str(ipaddress.ip_network(net.ipv6.ip, strict=False)[1])
    return None


def private_address(server: BoundServer, network: str | None = None) -> str | None:
    """The server's address on the private network whose id is ``network`` (default: its first network); None
    when it is not attached (yet)."""
    return next((n.ip for n in server.private_net or []
                 if n.ip and (network is None or str(n.network.id) == network)), None)


def has_ipv4(server: BoundServer) -> bool:
    """Whether ``server`` has a public IPv4 (an IPv6-only one, made with --no-ipv4, has none)."""
    return server.public_net is not None and server.public_net.ipv4 is not None


def firewalls(server: BoundServer) -> list[BoundFirewall]:
    """The firewalls applied to ``server``."""
    net = server.public_net
    return [f.firewall for f in net.firewalls or []] if net is not None else []


def type_of(server: BoundServer) -> BoundServerType:
    return known(server.server_type, f"server {server.id}'s type")


def architecture(server: BoundServer) -> str:
    """The server's architecture (its type's): which snapshots it boots."""
    return known(type_of(server).architecture, f"server {server.id}'s architecture")


def delete(client: Client, server: BoundServer, what: str) -> None:
    actions.wait(client, client.servers.delete(server), DELETE_TIMEOUT, what)


def delete_many(client: Client, servers: list[BoundServer]) -> None:
    """Delete servers at once, then wait for every deletion."""
    pending = [(server, client.servers.delete(server)) for server in servers]
    for server, action in pending:
        actions.wait(client, action, DELETE_TIMEOUT, f"deleting server {server.id}")
