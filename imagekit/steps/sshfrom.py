"""``--ssh-from CIDR[,CIDR]``: the hosts' SSH open only to the operator's sources. The profile's rules with SSH
narrowed make one firewall per source set (named and labelled after a stable hash of the sorted set, made once,
reused by every run after, kept like the profile's). Once the hosts are ready it takes the profile firewall's
place on them; imagekit then checks it still reaches each host's sshd, and if not puts the old firewall back
and says so: a narrowing that would lock imagekit out never stays."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Callable

from hcloud import Client
from hcloud.actions import BoundAction
from hcloud.firewalls import BoundFirewall, FirewallResource
from hcloud.servers import BoundServer

from ..cloud import actions, api
from ..cloud.servers import address, firewalls
from ..errors import CloudError, InputError
from ..leftovers import removing
from ..profiles import Profile
from .firewall import labelled_firewall, rules

LABEL = "ssh-from"
ROLE = "ssh-firewall"
REACH_TIMEOUT = 5.0  # seconds for sshd's greeting
APPLY_TIMEOUT = 120


def parse(raw: str | None) -> tuple[str, ...]:
    """``--ssh-from`` as a sorted set of networks (``10.0.0.1`` is ``10.0.0.1/32``); () when not given."""
    if not raw:
        return ()
    found = set()
    for part in (p.strip() for p in raw.split(",")):
        try:
            found.add(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise InputError(f"--ssh-from {raw}: {part!r} is not an address or network (CIDR, e.g. 203.0.113.0/24 "
                             "or 2001:db8::/48)") from None
    return tuple(str(net) for net in sorted(found, key=lambda n: (n.version, n)))


def digest(sources: tuple[str, ...]) -> str:
    return hashlib.sha256(",".join(sources).encode()).hexdigest()[:12]


def source_firewall(client: Client, profile: Profile, sources: tuple[str, ...]) -> tuple[BoundFirewall, bool]:
    """The profile's firewall with SSH open only to ``sources``, made if missing; (firewall, made now)."""
    h = digest(sources)
    return labelled_firewall(client, f"imagekit-{profile.name}-ssh-{h}", rules(profile, sources),
                             api.labels(role=ROLE, profile=profile.name, **{LABEL: h}))


def narrow(client: Client, profile: Profile, sources: tuple[str, ...], servers: list[BoundServer],
           progress: Callable[[str], None]) -> BoundFirewall:
    """The source set's firewall in place of every other on ``servers``, each host's sshd still answering;
    else every server's firewalls as they were, and a CloudError naming the hosts not reached."""
    firewall, made = source_firewall(client, profile, sources)
    before = {s.id: firewalls(s) for s in servers}
    _apply(client, firewall, servers)
    for server in servers:
        _remove_all_but(client, firewall, before[server.id], server)
    progress(f"ssh-from: firewall {firewall.name} ({', '.join(sources)}) on {len(servers)} host(s); checking SSH")
    lost = [ip for ip in (address(s) for s in servers) if ip is None or not answers(ip)]
    if not lost:
        return firewall
    for server in servers:
        for old in before[server.id]:
            if old.id != firewall.id:
                _apply(client, old, [server])
        if all(old.id != firewall.id for old in before[server.id]):
            _wait(client, client.firewalls.remove_from_resources(firewall, [_resource(server)]), "removing")
    if made:
        with removing("firewall", firewall.id, firewall.name, f"hcloud firewall delete {firewall.id}"):
            client.firewalls.delete(firewall)
    raise CloudError(f"--ssh-from {','.join(sources)}: imagekit could not reach {', '.join(map(str, lost))} over SSH "
                     "from this machine behind the narrowed firewall, so the hosts' firewall was put back as it was "
                     "(SSH open as the profile says): include this machine's public address in --ssh-from")


def answers(ip: str) -> bool:
    """sshd greets on ``ip``'s port 22 within REACH_TIMEOUT seconds."""
    try:
        with socket.create_connection((ip, 22), timeout=REACH_TIMEOUT) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _resource(server: BoundServer) -> FirewallResource:
    return FirewallResource(type="server", server=server)


def _apply(client: Client, firewall: BoundFirewall, servers: list[BoundServer]) -> None:
    _wait(client, client.firewalls.apply_to_resources(firewall, [_resource(s) for s in servers]), "applying")


def _remove_all_but(client: Client, keep: BoundFirewall, firewalls: list[BoundFirewall], server: BoundServer) -> None:
    for old in firewalls:
        if old.id != keep.id:
            _wait(client, client.firewalls.remove_from_resources(old, [_resource(server)]), "removing")


def _wait(client: Client, pending: list[BoundAction], doing: str) -> None:
    for action in pending:
        actions.wait(client, action, APPLY_TIMEOUT, f"{doing} a firewall")
