"""``gc``: sweep what runs that are gone left behind. Everything gc may sweep carries a lease its run renews while it
lives (cloud/leases.py): builder servers (builds and verifications), temporary keys, half-made agents (with their
Tailscale devices), pool hosts a fill was making, jobs' servers and keys (and devices), round trip and bench
servers. gc sweeps only what no lease covers any more (``--older-than``: a grace on top), or, with ``--run ID``,
what one run left whatever its lease (a cancelled workflow's last step). A listing is stale the moment it is
read: each server and key is read again just before it is deleted (a lease renewed since spares it), and a pool
host goes only once reserved as a claim does (pool/sweep.py). Ready agents and pool hosts carry no lease and are
never swept (deprovision or drain them) unless they carry a TTL (``--ttl``: imagekit.ttl) that has passed
(``--older-than`` a grace on top): then they go the same way, agents and jobs with their Tailscale devices. Spread
groups go with their last server, and empty ones a killed run left once they are old (provision.spread)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from hcloud import APIException, Client
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from .. import runid, tailnet, ttl
from ..cloud import api, leases
from ..cloud.servers import delete_many
from ..errors import InputError
from ..pool import members, sweep
from ..provision import halfmade, spread
from ..steps.operator import operator_key
from ..target import Target

# --role: (server roles, key roles) it sweeps; None: every role
ROLES: dict[str, tuple[set[str] | None, set[str] | None]] = {
    "builder": ({"builder"}, {"builder"}), "provision": ({"agent"}, {"provision"}), "job": ({"job"}, {"job"}),
    "pool": ({members.ROLE}, set()), "all": (None, None)}
KINDS = {"builder": "servers", "agent": "agent_servers", "job": "job_servers", members.ROLE: "pool_servers"}
ENROLS = ("agent", "job")  # roles whose servers may have joined the tailnet
Found = TypeVar("Found", BoundServer, BoundSSHKey)


def collect_garbage(target: Target, older_than_minutes: float, progress: Callable[[str], None], role: str = "all",
                    run: str | None = None) -> dict[str, Any]:
    """``role``: ``builder``, ``provision`` (provisioning runs' keys and half-made agents), ``job``, ``pool`` (hosts a
    fill was making) or ``all``; ``run``: only that run's, whatever their lease."""
    if role not in ROLES:
        raise InputError(f"--role {role!r}: choose one of {', '.join(ROLES)}")
    server_roles, key_roles = ROLES[role]
    client = api.connect(target)
    grace = older_than_minutes * 60

    def due(resource: BoundServer | BoundSSHKey) -> bool:
        labels = resource.labels or {}
        if run is not None:
            return labels.get(runid.LABEL) == run and leases.KEY in labels
        return leases.expired(resource, grace) or (isinstance(resource, BoundServer) and ttl.expired(resource, grace))

    def ours(resource: BoundServer | BoundSSHKey, roles: set[str] | None) -> bool:
        return (resource.labels or {}).get("managed-by") == "imagekit" and \
            (roles is None or (resource.labels or {}).get("role") in roles)

    wanted = f"{api.selector(**({runid.LABEL: run} if run else {}))},{leases.KEY}"
    found = {s.id: s for s in client.servers.get_all(label_selector=wanted)}
    if run is None:  # and what outlived its TTL, lease or not
        found.update({s.id: s for s in client.servers.get_all(label_selector=f"{api.selector()},{ttl.LABEL}")})
    listed = [s for s in found.values() if s.status != "deleting" and ours(s, server_roles) and due(s)]
    keys = [k for k in client.ssh_keys.get_all(label_selector=wanted) if ours(k, key_roles) and due(k)]
    result: dict[str, Any] = {kind: [] for kind in (*KINDS.values(), "other_servers", "spared")}
    pool = [s for s in listed if _role(s) == members.ROLE]
    servers = [fresh for s in listed if s not in pool and (fresh := _reread(client.servers.get_by_id, s.id))
               is not None and fresh.status != "deleting" and ours(fresh, server_roles) and due(fresh)]
    for server in servers:
        progress(f"deleting {_what(server)} {server.id} ({server.name}): {_why(server, run)}")
        result[KINDS.get(_role(server), "other_servers")].append(server.id)
    delete_many(client, servers)
    result["placement_groups"] = spread.drop_empty(client, spread.groups_of(servers), progress)
    if role in ("provision", "all"):  # and the empty ones a killed provision or roll left
        result["placement_groups"] += spread.abandoned(client, grace, run, progress)
    if pool:
        keypair = operator_key(required=False, why="")
        result["pool_servers"], result["spared"] = sweep.delete_unclaimed(
            client, pool, keypair, lambda s: _why(s, run) if due(s) else None, progress, f"gc/{run or 'expired'}")
    deleted = {i for kind in (*KINDS.values(), "other_servers") for i in result[kind]}
    result["expired"] = [s.id for s in listed if s.id in deleted and ttl.expired(s, grace)]  # by their TTL
    result["ssh_keys"] = _delete_keys(client, keys, lambda k: ours(k, key_roles) and due(k), progress)
    enrolled = [s for s in servers if _role(s) in ENROLS and (s.labels or {}).get("tailscale") != "no"]
    result["tailscale_devices_deleted"] = tailnet.remove_devices(target, enrolled, progress)  # last: Tailscale's API
    return result


def _delete_keys(client: Client, keys: list[BoundSSHKey], still: Callable[[BoundSSHKey], bool],
                 progress: Callable[[str], None]) -> list[int]:
    deleted = []
    for listed in keys:
        key = _reread(client.ssh_keys.get_by_id, listed.id)
        if key is None or not still(key):
            continue
        progress(f"deleting temporary key {key.id} ({key.name})")
        client.ssh_keys.delete(key)
        deleted += [key.id] if key.id is not None else []
    return deleted


def _reread(get: Callable[[int], Found], ident: int | None) -> Found | None:
    """The resource as it is now; None once it is gone."""
    assert ident is not None, "a resource the API listed has an id"
    try:
        return get(ident)
    except APIException as exc:
        if exc.code == "not_found":
            return None
        raise


def _role(server: BoundServer) -> str:
    return (server.labels or {}).get("role", "")


def _what(server: BoundServer) -> str:
    if ttl.expired(server) and not leases.expired(server):
        return f"expired {_role(server) or 'imagekit'} server"
    return {"builder": "builder server", "agent": "half-made agent server", "job": "job server"}.get(
        _role(server), f"{_role(server) or 'imagekit'} server")


def _why(server: BoundServer, run: str | None) -> str:
    """Why it goes, for progress lines."""
    if run is not None:
        return f"it belongs to run {run}"
    if ttl.expired(server) and not leases.expired(server):
        return f"its TTL ended at {ttl.shown(server)}"
    if _role(server) == "agent":
        return halfmade.died(server)
    ended = time.strftime("%H:%M:%S UTC", time.gmtime(leases.until(server) or 0))
    return f"the run that made it is gone (its lease ended at {ended})"
