"""``pool fill``, ``pool status`` and ``pool drain``.

``fill`` makes the pool hold ``size`` ready hosts from the newest snapshot of the profile: hosts from an older
snapshot (or broken, or left half-made by a fill that died) are deleted, missing ones are created in parallel,
each its own pipeline (server labelled ``pool-until`` → boot → SSH with the operator's key → cloud-init done →
label off), deleted when it fails. The hosts carry the operator's key only (HETZNER_SSH_KEY_ID), whose private
half (SSH_PRIVATE_KEY_PATH) checks them here and lets ``provision`` claim them."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from hcloud import Client

from .. import profiles
from ..cloud import actions, api, lookups
from ..errors import InputError
from ..host.keys import KeyPair
from ..pipeline import StepFailed, in_workers, run_steps
from ..steps.firewall import profile_firewall
from ..steps.job import HostJob
from ..steps.operator import operator_keys
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import create, delete, delete_many
from ..target import Target
from . import members

FILL_TIMEOUT = 600.0  # seconds a new pool host may take to answer SSH and finish cloud-init


@dataclass
class PoolOptions:
    size: int = 0
    profile: str = "agent"
    snapshot: str = "latest"  # the snapshot its hosts boot: `latest` (the newest of the profile) or an id
    server_type: str = "cx23"
    location: str | None = None  # a name, or names tried in order when one has no capacity
    parallel: int = 5


@dataclass
class Plan:
    """What every new pool host is made of; ``provision --refill`` makes one from its own run."""

    client: Client
    profile: str
    server_type: object
    locations: list
    image: object
    key: object  # the operator's SSH key in the project
    keypair: KeyPair  # its private half
    firewall: object | None
    progress: object
    parallel: int = 5
    cancel: threading.Event = field(default_factory=threading.Event)


def check_options(o: PoolOptions) -> PoolOptions:
    if o.size < 0:
        raise InputError(f"--size {o.size}: give 0 or more hosts")
    if o.parallel < 1:
        raise InputError(f"--parallel {o.parallel}: give at least 1")
    return o


def plan(target: Target, o: PoolOptions, progress) -> Plan:
    """Every input checked before anything is created."""
    client = api.connect(target)
    stype = lookups.server_type(client, o.server_type, progress)
    locations = lookups.locations(client, o.location)
    image = lookups.own_snapshot(client, o.snapshot, o.profile, stype.architecture)
    key, keypair = operator_keys(client, "pool hosts are reached with your own SSH key, and provision claims "
                                                 "them with the same")
    return Plan(client=client, profile=o.profile, server_type=stype, locations=locations, image=image, key=key,
                keypair=keypair, firewall=None, progress=progress, parallel=o.parallel)


def fill(target: Target, o: PoolOptions, progress) -> dict:
    p = plan(target, check_options(o), progress)
    p.firewall, _ = profile_firewall(p.client, profiles.load(o.profile))
    return fill_to(p, o.size)


def fill_to(p: Plan, size: int) -> dict:
    """Make the pool of ``p.profile`` hold ``size`` ready hosts of ``p.image``; the result lists what changed."""
    found = members.members(p.client, p.profile)
    stale = [s for s in found if _why_stale(s, p.image.id) is not None]
    keep = [s for s in found if s not in stale]
    extra = keep[size:]  # the oldest stay: they are the ones booted longest (warmest caches)
    keep = keep[:size]
    if stale or extra:
        for s in stale:
            p.progress(f"pool: deleting {s.name} ({s.id}): {_why_stale(s, p.image.id)}")
        for s in extra:
            p.progress(f"pool: deleting {s.name} ({s.id}): the pool holds more than {size}")
        delete_many(p.client, stale + extra)
    todo = size - len(keep)
    if todo > 0:
        p.progress(f"pool: creating {todo} host(s) from snapshot {p.image.id} ({p.profile}), "
                   f"{p.server_type.name}")
    made = in_workers(lambda i: make_host(p), list(range(max(0, todo))), workers=p.parallel, cancel=p.cancel,
                      name="pool", interrupted=lambda: p.progress("interrupted: every new pool host is deleted"))
    failed = [m["error"] for m in made if m["error"]]
    hosts = members.members(p.client, p.profile)
    result = {"profile": p.profile, "snapshot_id": p.image.id, "size": size,
              "created": [m["server_id"] for m in made if not m["error"]],
              "deleted": [s.id for s in stale + extra], "failed": failed,
              "members": [row(s, p.image.id) for s in hosts], "cost": members.cost(hosts)}
    p.progress("pool: " + members.describe_cost(result["cost"]))
    return result


def _why_stale(server, image_id: int) -> str | None:
    if members.image_id(server) != image_id:
        return f"from image {members.image_id(server)}, not the pool's snapshot {image_id}"
    if members.FILLING.passed(server):
        return "left half-made by a fill that died"
    if members.FILLING.of(server) is None and server.status != "running":
        return f"{server.status}, not running"
    return None


@dataclass
class PoolHost(HostJob):
    plan: Plan | None = None
    action: object | None = None


class CreatePoolHost:
    name = "create server"

    def run(self, h: PoolHost) -> None:
        p = h.plan
        h.server, h.action = create(
            h.client, h.resource_name, h.labels, server_type=p.server_type, image=p.image, ssh_keys=[p.key],
            user_data=f"#cloud-config\n# imagekit pool host of profile {p.profile}: unassigned until provision "
                      "claims it\n", firewalls=[p.firewall] if p.firewall else None, locations=p.locations,
            failover=lambda full, next_: h.progress(f"pool: {full} has no capacity: trying {next_}"))
        h.ip = h.server.public_net.ipv4.ip if h.server.public_net and h.server.public_net.ipv4 else None

    def cleanup(self, h: PoolHost) -> None:
        if h.failed and h.server is not None:
            delete(h.client, h.server, f"deleting pool host {h.server.id}")


class Boot:
    name = "boot"

    def run(self, h: PoolHost) -> None:
        actions.wait(h.client, h.action, h.remaining(), f"creating pool host {h.server.id}", check=h.check)
        if h.ip is None:
            h.server.reload()
            h.ip = h.server.public_net.ipv4.ip

    def cleanup(self, h: PoolHost) -> None:
        pass


class Ready:
    """The filling label comes off last: only a host that got all the way can be claimed."""

    name = "ready"

    def run(self, h: PoolHost) -> None:
        h.server = members.FILLING.cleared(h.client, h.server)

    def cleanup(self, h: PoolHost) -> None:
        pass


def make_host(p: Plan) -> dict:
    """One new pool host of the plan, ready or deleted; the others are left as they are."""
    name = members.NAME_PREFIX + secrets.token_hex(4)
    h = PoolHost(client=p.client, progress=p.progress, resource_name=name, timeout=FILL_TIMEOUT, cancel=p.cancel,
                 keypair=p.keypair, plan=p,
                 labels=members.labels(p.profile, p.key.id, **members.FILLING.label(time.time() + FILL_TIMEOUT)))
    try:
        run_steps([CreatePoolHost(), Boot(), WaitSSH(), WaitCloudInit(), Ready()], h, lambda line: None)
    except StepFailed as exc:
        p.progress(f"pool: {name} failed: {exc}")
        return {"server_id": None, "error": f"{name}: {exc}"}
    p.progress(f"pool: {name} ready: server {h.server.id}, {h.ip} ({time.monotonic() - h.started:.1f} s)")
    return {"server_id": h.server.id, "error": None}


def row(server, newest: int | None) -> dict:
    return {"server_id": server.id, "name": server.name, "status": server.status, "ready": members.ready(server),
            "ipv4": server.public_net.ipv4.ip if server.public_net and server.public_net.ipv4 else None,
            "snapshot_id": members.image_id(server), "stale": newest is not None and members.image_id(server) != newest,
            "location": server.location.name if server.location else None,
            "server_type": server.server_type.name, "created": server.created.isoformat()}


def status(target: Target, profile: str) -> dict:
    """The pool's hosts, whether each is ready and on the newest snapshot, and what the pool costs."""
    client = api.connect(target)
    hosts = members.members(client, profile)
    archs = {s.server_type.architecture for s in hosts} or {"x86"}
    newest = {a: lookups.newest_snapshot(client, profile, a) for a in archs}
    rows = [row(s, getattr(newest[s.server_type.architecture], "id", None)) for s in hosts]
    return {"profile": profile, "members": rows, "ready": sum(r["ready"] and not r["stale"] for r in rows),
            "stale": sum(r["stale"] for r in rows), "cost": members.cost(hosts)}


def drain(target: Target, profile: str, progress) -> dict:
    """Delete every pool host of ``profile`` (hosts already claimed are agents now, and stay)."""
    client = api.connect(target)
    hosts = members.members(client, profile)
    for s in hosts:
        progress(f"pool: deleting {s.name} ({s.id})")
    delete_many(client, hosts)
    return {"profile": profile, "deleted": [s.id for s in hosts]}
