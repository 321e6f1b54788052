"""Recycling inside the paid hour. Hetzner bills every started hour of a server from its ``created`` time, so a
server given up (a deprovisioned agent, a finished job's) with at least ``--recycle-min`` minutes of its hour left
goes back into the warm pool when the pool of its profile holds fewer hosts than its size (members.size), instead of
being deleted.

Recycled = Hetzner's rebuild (the server, its address and its billing stay) from the profile's newest snapshot with
new user data, always (Hetzner would re-use the previous tenant's): a new pinned host key, the operator's key to
log in; the disk starts again from the snapshot, with its empty machine id, no Tailscale state and nothing of the
previous tenant. Renamed and relabelled exactly as ``pool fill`` makes a pool host (fill.host_spec), leased until it
is ready the way fill checks one (fill.readiness). A rebuild or a wait that fails deletes the server: it is never
half a pool host. Servers in a placement group or a private network, without IPv4, or behind other firewalls than
the profile's are not what fill makes: they are deleted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from hcloud import Client
from hcloud.firewalls import FirewallResource
from hcloud.servers import BoundServer

from .. import runid, settings
from ..cloud import actions, api, leases, lookups
from ..cloud.servers import address, architecture, delete_many, firewalls, has_ipv4, type_of
from ..cloud.spec import ServerSpec
from ..errors import InputError
from ..host import hostkey
from ..pipeline import Step, StepFailed, in_workers, run_steps
from ..steps.job import HostJob
from ..steps.operator import operator_keys
from ..steps.server import remove
from . import fill, members

HOUR = 60  # minutes: Hetzner bills each started hour of a server


def minutes_left(created: datetime, now: datetime) -> float:
    """Minutes left of the hour the server has started (billed already)."""
    return HOUR - ((now - created).total_seconds() / 60) % HOUR


def minimum(given: str | int | None) -> int:
    """``--recycle-min`` when given, else IMAGEKIT_RECYCLE_MIN (default 15): minutes, 0 (recycling off) to 59."""
    value = str(given if given is not None else settings.get("IMAGEKIT_RECYCLE_MIN")).strip()
    if not value.isdigit() or int(value) >= HOUR:
        raise InputError(f"--recycle-min {value!r}: give the minutes a server must have left of its paid hour to be "
                         f"recycled into the pool, 1 to {HOUR - 1}, or 0 to always delete it")
    return int(value)


@dataclass
class Candidate:
    """A server to recycle, what it has left of its hour, and the pool plan it is rebuilt to."""

    server: BoundServer
    left: float
    plan: fill.PoolPlan


def retire(client: Client, servers: list[BoundServer], least: int, progress: Callable[[str], None],
           cancel: threading.Event | None = None) -> tuple[list[BoundServer], list[BoundServer]]:
    """Each server recycled into the pool when worth it and room is left, else deleted: (recycled, deleted)."""
    chosen, why = choose(client, servers, least, datetime.now(timezone.utc))
    cancel = cancel or threading.Event()
    done = in_workers(lambda c: recycle(c, progress, cancel), chosen, workers=5, cancel=cancel, name="recycle",
                      interrupted=lambda: progress("interrupted: every server being recycled is deleted"))
    recycled = [c.server for c, ok in zip(chosen, done, strict=True) if ok]
    doomed = [s for s in servers if s.id in why]
    delete_many(client, doomed)
    for server in doomed:
        progress(f"[{server.name}] deleted: server {server.id} ({why[api.known(server.id, 'the server id')]})")
    deleted = doomed + [c.server for c, ok in zip(chosen, done, strict=True) if not ok]
    return recycled, deleted


def choose(client: Client, servers: list[BoundServer], least: int, now: datetime
           ) -> tuple[list[Candidate], dict[int, str]]:
    """The servers worth recycling while their pools have room (most minutes left first), and why each other one
    is deleted."""
    why: dict[int, str] = {}
    chosen: list[Candidate] = []
    room: dict[str, int] = {}
    plans: dict[tuple[str, str, str], fill.PoolPlan | str] = {}
    by_left = sorted(servers, key=lambda s: -minutes_left(api.known(s.created, "a server's creation time"), now))
    for server in by_left:
        sid = api.known(server.id, "the server's id")
        left = minutes_left(api.known(server.created, f"server {sid}'s creation time"), now)
        profile = (server.labels or {}).get("profile", "")
        if least == 0:
            reason: str | None = "recycling is off (--recycle-min 0)"
        elif left < least:
            reason = f"{left:.0f} minutes left of its paid hour, fewer than --recycle-min {least}"
        else:
            reason = unfit(client, server, profile)
        if reason is None and profile not in room:
            room[profile] = members.size(client, profile) - len(members.members(client, profile))
        if reason is None and room[profile] <= 0:
            reason = f"the pool of {profile} is full (the size of its last `pool fill`)"
        if reason is None:
            key = (profile, architecture(server), api.known(type_of(server).name, "the server type's name"))
            if key not in plans:
                plans[key] = _plan(client, server, profile)
            plan = plans[key]
            if isinstance(plan, str):
                reason = plan
            else:
                chosen.append(Candidate(server, left, plan))
                room[profile] -= 1
        if reason is not None:
            why[sid] = reason
    return chosen, why


def unfit(client: Client, server: BoundServer, profile: str) -> str | None:
    """Why the server cannot become what ``pool fill`` makes (None: it can)."""
    if not profile:
        return "it has no profile label"
    if server.status != "running":
        return f"{server.status}, not running"
    if server.placement_group is not None:
        return "it is in a placement group"
    if server.private_net:
        return "it is attached to a private network"
    if not has_ipv4(server):
        return "it has no IPv4 (pool hosts have one)"
    profile_firewalls = {f.id for f in members.firewalls(client, profile)}
    if not profile_firewalls:
        return f"the profile {profile} has no firewall (no pool was filled)"
    if not _firewalls(server) <= profile_firewalls:  # none (a job's): its profile's is applied
        return "it is behind other firewalls than its profile's"
    return None


def _firewalls(server: BoundServer) -> set[int | None]:
    return {f.id for f in firewalls(server)}


def _plan(client: Client, server: BoundServer, profile: str) -> fill.PoolPlan | str:
    """The pool plan of the server's profile, architecture and type; or why there is none."""
    snapshot = lookups.newest_snapshot(client, profile, architecture(server))
    if snapshot is None:
        return f"no snapshot of {profile} for {architecture(server)} to rebuild it from"
    try:
        key, keypair = operator_keys(client, "recycling into the pool reaches the host with your own key")
    except InputError as exc:
        return str(exc)
    spec = ServerSpec(server_type=type_of(server), image=snapshot)
    firewall = members.firewalls(client, profile)[0]  # there is one: the server is behind it (unfit)
    return fill.PoolPlan(client=client, profile=profile, spec=fill.pool_spec(spec, profile, key, firewall), key=key,
                         keypair=keypair, run_id=runid.given(None))


class Rebuild:
    """The server renamed and relabelled as a new pool host (leased), then rebuilt with the host's user data; its
    cleanup deletes it when anything after fails."""

    name = "rebuild"

    def run(self, h: HostJob) -> None:
        assert h.server is not None and h.spec is not None, "a recycle starts with the server and its pool spec"
        server = h.client.servers.update(leases.release(h.server), name=h.resource_name,  # a job's: no more renewals
                                         labels={**h.spec.server_labels, **leases.label()})
        h.server = leases.hold(server)
        [firewall] = h.spec.firewalls  # the profile's (fill.pool_spec), as on every pool host
        if firewall.id not in _firewalls(server):
            for action in h.client.firewalls.apply_to_resources(firewall, [FirewallResource("server", server)]):
                actions.wait(h.client, action, h.remaining(), f"applying firewall {firewall.id} to {server.id}",
                             check=h.check)
        h.pin, h.ip = hostkey.pin(server), address(server)
        h.action = h.client.servers.rebuild(server, h.spec.image, user_data=h.spec.server_user_data).action
        h.event("rebuilding", f"server {server.id} from snapshot {h.spec.image.id}")

    def cleanup(self, h: HostJob) -> None:
        if h.server is not None and h.discard():
            remove(h, "server")


def recycle(c: Candidate, progress: Callable[[str], None], cancel: threading.Event) -> bool:
    """The candidate rebuilt into a ready pool host (True), or deleted (False)."""
    p, old = c.plan, c.server.name
    spec = replace(fill.host_spec(p), host_key=hostkey.new(), login_key=p.keypair.public_openssh)
    h = HostJob(client=p.client, progress=progress, resource_name=fill.new_name(), spec=spec, server=c.server,
                timeout=fill.FILL_TIMEOUT, cancel=cancel, keypair=p.keypair, outlives=True)
    steps: list[Step[HostJob]] = [Rebuild(), *fill.readiness()]
    try:
        run_steps(steps, h, lambda line: None)
    except StepFailed as exc:
        progress(f"[{old}] deleted: server {c.server.id} (recycling it failed: {exc})")
        return False
    progress(f"[{old}] recycled into the pool: {c.left:.0f} minutes left of its paid hour (server {c.server.id}, "
             f"now {h.resource_name}, ready in {time.monotonic() - h.started:.1f} s)")
    return True


class Recycled:
    """A job's step placed right after the one that makes its server: its cleanup, the last before the server's,
    recycles the server into the pool when it is worth it (else the create step's cleanup deletes it)."""

    name = "recycle (at teardown)"

    def __init__(self, least: int):
        self.least = least

    def run(self, h: HostJob) -> None:
        pass

    def cleanup(self, h: HostJob) -> None:
        if h.server is None or not h.discard() or h.cancel.is_set() or self.least == 0:
            return
        current = h.client.servers.get_by_id(api.known(h.server.id, "the server's id"))  # running now, its firewalls
        chosen, why = choose(h.client, [current], self.least, datetime.now(timezone.utc))
        if not chosen:
            h.progress(f"[{current.name}] not recycled: {why[api.known(current.id, 'the server id')]}")
            return
        recycle(chosen[0], h.progress, h.cancel)
        h.committed = True  # a pool host now, or deleted by the recycle: not the create step's to delete
