"""``pool fill``, ``pool status`` and ``pool drain``.

``fill`` makes the pool hold ``size`` ready hosts from the newest snapshot of the profile: hosts from an older
snapshot (or broken, or left half-made by a fill that died) are deleted, missing ones are created in parallel,
each its own pipeline (server leased while the fill makes it → boot → SSH with the operator's key to its pinned
host key → cloud-init done → lease off), deleted when it fails. The hosts carry the operator's key only
(HETZNER_SSH_KEY_ID), whose private half (SSH_PRIVATE_KEY_PATH) checks them here and lets ``provision`` claim them.
Fill and drain delete a host only once they have reserved it as a claim does (pool/sweep.py)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from hcloud import Client
from hcloud.firewalls import BoundFirewall
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from .. import profiles, runid, ttl
from ..cloud import api, family, leases, lookups, networks
from ..cloud.servers import address, architecture, type_of
from ..cloud.spec import ServerSpec, resolve
from ..errors import InputError
from ..host import hostkey
from ..host.keys import KeyPair
from ..pipeline import Step, StepFailed, in_workers, run_steps
from ..steps import caps
from ..steps.firewall import profile_firewall
from ..steps.job import HostJob
from ..steps.operator import operator_key, operator_keys
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import Boot, CreateServer
from ..target import Target
from . import members, sweep

FILL_TIMEOUT = 600.0  # seconds a new pool host may take to answer SSH and finish cloud-init


@dataclass
class PoolOptions:
    size: int = 0
    profile: str = "agent"
    snapshot: str = "latest"  # the snapshot its hosts boot: `latest` (the newest of the profile) or an id
    server_type: str = "cx23"
    location: str | None = None  # a name, or names tried in order when one has no capacity
    parallel: int = 5
    run_id: str | None = None  # labels the hosts it makes (``gc --run``); default: a new one
    labels: dict[str, str] = field(default_factory=dict)  # the operator's own, on every new host (cloud.userlabels)
    ttl: float | None = None  # seconds each new host lives, claimed or not (imagekit.ttl); None: no expiry
    networks: tuple[str, ...] = ()  # private networks every new host joins; ssh_via private: reached there
    ssh_via: str = "public"
    ipv4: bool = True  # off: IPv6-only hosts, a pool of their own that `provision --no-ipv4` claims (cloud.family)


class Member(TypedDict):
    """A pool host's row in ``pool fill`` and ``pool status`` (the text table: render.pool)."""

    server_id: int | None
    name: str | None
    status: str | None
    ready: bool
    ipv4: str | None
    snapshot_id: int | None
    stale: bool  # not from the newest snapshot of the profile
    location: str | None
    server_type: str | None
    created: str


class NewHost(TypedDict):
    """A new pool host: its server, or why it is not there."""

    server_id: int | None
    error: str | None


@dataclass(frozen=True)
class PoolPlan:
    """What every new pool host is made of; ``provision --refill`` makes one from its own plan."""

    client: Client
    profile: str
    spec: ServerSpec  # the pool's snapshot, the operator's key alone, the profile's firewall (see pool_spec)
    key: BoundSSHKey  # the operator's SSH key in the project: its id labels the hosts
    keypair: KeyPair  # its private half
    run_id: str  # the run that fills the pool (each new host's `run` label)
    parallel: int = 5
    ttl: float | None = None  # seconds each new host lives (its expires-at label); None: no expiry

    @property
    def image_id(self) -> int:
        return api.known(self.spec.image.id, "the pool's snapshot's id")


def pool_spec(spec: ServerSpec, profile: str, key: BoundSSHKey, firewall: BoundFirewall | None) -> ServerSpec:
    """A pool host's server: ``spec``'s type, locations and snapshot, the operator's key alone, no agent yet (and no
    placement group: a --spread run's is its agents')."""
    return replace(spec, ssh_keys=(key,), firewalls=(firewall,) if firewall else (), placement_group=None,
                   user_data=f"#cloud-config\n# imagekit pool host of profile {profile}: unassigned until provision "
                             "claims it\n")


def check_options(o: PoolOptions) -> PoolOptions:
    if o.size < 0:
        raise InputError(f"--size {o.size}: give 0 or more hosts")
    if o.parallel < 1:
        raise InputError(f"--parallel {o.parallel}: give at least 1")
    networks.check(o.networks, o.ssh_via)
    return o


def fill(target: Target, o: PoolOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every input checked before anything is created; then the pool filled to ``o.size``."""
    check_options(o)
    if not o.ipv4:
        family.require_ipv6_route(target)
    profile = profiles.load(o.profile)
    client = api.connect(target)
    spec = resolve(client, server_type=o.server_type, location=o.location, warn=progress, labels=o.labels,
                   image=lambda arch: lookups.own_snapshot(client, o.snapshot, o.profile, arch), ipv4=o.ipv4)
    attached, reached_on = networks.attach(client, o.networks, o.ssh_via)
    spec = replace(spec, networks=attached, ssh_network=reached_on)
    key, keypair = operator_keys(client, "pool hosts are reached with your own SSH key, and provision claims them "
                                         "with the same")
    firewall, _ = profile_firewall(client, profile)
    p = PoolPlan(client=client, profile=o.profile, spec=pool_spec(spec, o.profile, key, firewall), key=key,
                 keypair=keypair, parallel=o.parallel, run_id=runid.given(o.run_id), ttl=o.ttl)
    members.record_size(client, o.profile, o.size)
    return fill_to(p, o.size, progress)


def fill_to(p: PoolPlan, size: int, progress: Callable[[str], None],
            cancel: threading.Event | None = None) -> dict[str, Any]:
    """Make the pool of ``p.profile`` and the spec's address family hold ``size`` ready hosts of its snapshot; the
    result lists what changed."""
    cancel = cancel or threading.Event()
    found = members.members(p.client, p.profile, p.spec.ipv4)
    stale = [s for s in found if _why_stale(s, p.image_id) is not None]
    keep = [s for s in found if s not in stale]
    extra = {s.id for s in keep[size:]}  # the oldest stay: they are the ones booted longest (warmest caches)
    keep = keep[:size]

    def why(server: BoundServer) -> str | None:  # read again on the host's current labels, just before deleting
        if (stale_now := _why_stale(server, p.image_id)) is not None:
            return stale_now
        return f"the pool holds more than {size}" if server.id in extra and members.ready(server) else None

    deleted, left = sweep.delete_unclaimed(p.client, [s for s in found if s not in keep], p.keypair, why, progress,
                                           f"fill/{p.run_id}") if stale or extra else ([], [])
    todo = size - len(keep)
    caps.check(p.client, "pool fill", todo, p.spec)
    if todo > 0:
        progress(f"pool: creating {todo} host(s) from snapshot {p.image_id} ({p.profile}), "
                 f"{p.spec.server_type.name}")
    made = in_workers(lambda i: make_host(p, progress, cancel), list(range(max(0, todo))), workers=p.parallel,
                      cancel=cancel, name="pool", interrupted=lambda: progress("interrupted: every new pool host is "
                                                                                "deleted"))
    failed = [m["error"] for m in made if m["error"]]
    hosts = members.members(p.client, p.profile, p.spec.ipv4)
    cost = members.cost(hosts)
    progress("pool: " + members.describe_cost(cost))
    return {"profile": p.profile, "snapshot_id": p.image_id, "size": size,
            "created": [m["server_id"] for m in made if not m["error"]],
            "deleted": deleted, "left": left, "failed": failed,
            "members": [row(s, p.image_id) for s in hosts], "cost": cost}


def _why_stale(server: BoundServer, image_id: int) -> str | None:
    if leases.live(server):
        return None  # a fill is at work on it
    if members.image_id(server) != image_id:
        return f"from image {members.image_id(server)}, not the pool's snapshot {image_id}"
    if leases.expired(server):
        return "left half-made by a fill that died"
    if server.status != "running":
        return f"{server.status}, not running"
    if hostkey.LABEL not in (server.labels or {}):
        return "made before imagekit pinned host keys"
    return None


class Ready:
    """The lease comes off last: only a host that got all the way can be claimed."""

    name = "ready"

    def run(self, h: HostJob) -> None:
        assert h.server is not None, "Ready follows the step that made the server"
        h.server = leases.end(h.server)


def new_name() -> str:
    return members.NAME_PREFIX + secrets.token_hex(4)


def host_spec(p: PoolPlan) -> ServerSpec:
    """A new pool host's spec: the plan's, labelled as a pool host of its run (and the operator's own labels)."""
    labels = {**p.spec.labels,  # the operator's own (--label)
              **members.labels(p.profile, api.known(p.key.id, "the SSH key's id"), **{runid.LABEL: p.run_id},
                               **ttl.label(p.ttl), **family.label(p.spec.ipv4))}
    return replace(p.spec, labels=labels)


def readiness() -> list[Step[HostJob]]:
    """What makes a pool host's server claimable once its create (or rebuild) action is under way."""
    return [Boot("pool host"), WaitSSH(), WaitCloudInit(), Ready()]


def make_host(p: PoolPlan, progress: Callable[[str], None], cancel: threading.Event) -> NewHost:
    """One new pool host of the plan, ready or deleted; the others are left as they are."""
    name = new_name()
    h = HostJob(client=p.client, progress=progress, resource_name=name, spec=host_spec(p),
                timeout=FILL_TIMEOUT, cancel=cancel, keypair=p.keypair, outlives=True)
    steps: list[Step[HostJob]] = [CreateServer("pool host", name="create server"), *readiness()]
    try:
        run_steps(steps, h, lambda line: None)
    except StepFailed as exc:
        progress(f"pool: {name} failed: {exc}")
        return {"server_id": None, "error": f"{name}: {exc}"}
    assert h.server is not None, "a pipeline that succeeded made its server"
    progress(f"pool: {name} ready: server {h.server.id}, {h.ip} ({time.monotonic() - h.started:.1f} s)")
    return {"server_id": h.server.id, "error": None}


def row(server: BoundServer, newest: int | None) -> Member:
    return {"server_id": server.id, "name": server.name, "status": server.status, "ready": members.ready(server),
            "ipv4": address(server),
            "snapshot_id": members.image_id(server), "stale": newest is not None and members.image_id(server) != newest,
            "location": server.location.name if server.location else None,
            "server_type": type_of(server).name,
            "created": api.known(server.created, f"server {server.id}'s creation time").isoformat()}


def status(target: Target, profile: str) -> dict[str, Any]:
    """The pool's hosts, whether each is ready and on the newest snapshot, and what the pool costs."""
    client = api.connect(target)
    hosts = members.members(client, profile)
    archs = {architecture(s) for s in hosts} or {"x86"}
    newest = {a: lookups.newest_snapshot(client, profile, a) for a in archs}
    rows = [row(s, getattr(newest[architecture(s)], "id", None)) for s in hosts]
    return {"profile": profile, "members": rows, "ready": sum(r["ready"] and not r["stale"] for r in rows),
            "stale": sum(r["stale"] for r in rows), "cost": members.cost(hosts)}


def drain(target: Target, profile: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """Delete every pool host of ``profile``, each once reserved as a claim does: hosts claimed meanwhile are agents
    now, and stay; so do hosts a running fill is still making (its lease is live)."""
    keypair = operator_key(required=True, why="drain reserves each pool host as a claim does before deleting it")
    client = api.connect(target)
    members.record_size(client, profile, 0)  # nothing is recycled into a drained pool
    hosts = members.members(client, profile)
    progress(f"pool: {len(hosts)} host(s) of {profile} listed: {', '.join(str(s.name) for s in hosts) or '-'}")
    busy = [s for s in hosts if leases.live(s)]
    for s in busy:
        progress(f"pool: {s.name} ({s.id}) left alone: a running fill is still making it")
    deleted, left = sweep.delete_unclaimed(client, [s for s in hosts if s not in busy], keypair, _drained, progress,
                                           "drain")
    left += [{"server_id": api.known(s.id, "the server's id"), "name": s.name,
              "why": "a running fill is still making it"} for s in busy]
    return {"profile": profile, "deleted": deleted, "left": left}


def _drained(server: BoundServer) -> str | None:
    return None if leases.live(server) else "drained"
