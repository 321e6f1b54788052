"""The roll as a whole: the target snapshot, the moves, what every replacement shares (the operator's key, the
tailnet, the profile's firewall, one action poller), each replacement's own provisioning plan, and the batches:
each replacement its own pipeline in a worker thread, the roll stopping after a batch with a failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hcloud import Client
from hcloud.firewalls import BoundFirewall
from hcloud.images import BoundImage
from hcloud.placement_groups import BoundPlacementGroup
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from ... import events as live
from ... import profiles, runid, secretfile, tailnet
from ...bundledigest import CODE_LABEL
from ...cloud import api, leases, lookups
from ...cloud.actions import ActionWatcher
from ...cloud.api import known
from ...cloud.servers import address, architecture, firewalls, has_ipv4, type_of
from ...cloud.spec import ServerSpec
from ...errors import InputError
from ...host import hostkey
from ...host.keys import KeyPair
from ...pipeline import Step, StepFailed, in_workers, run_steps
from ...provision import spread
from ...provision.agent import Agent
from ...provision.options import ProvisionOptions
from ...provision.plan import ProvisionPlan
from ...steps.firewall import profile_firewall
from ...steps.operator import operator_keys
from ...target import Target
from . import bluegreen, inplace
from .plan import ROLLING, Move, Rolled, RollOptions, plan, row_of


@dataclass(frozen=True)
class Shared:
    """What every replacement of the roll shares, found once before anything is made."""

    target: Target
    client: Client
    options: RollOptions
    profile: profiles.Profile
    run_id: str
    operator_key: BoundSSHKey
    keypair: KeyPair
    tailnet: tailnet.Tailnet | None  # signed in when any replacement enrols
    tags: tuple[str, ...]
    firewall: BoundFirewall
    groups: dict[int, BoundPlacementGroup] = field(default_factory=dict)  # old spread group → its replacements'


def roll_fleet(target: Target, options: RollOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    """Roll the chosen agents onto the target snapshot; the result lists each with its old and new server."""
    if options.batch < 1:
        raise InputError(f"--batch {options.batch}: give at least 1")
    if options.timeout is not None and options.timeout <= 0:
        raise InputError(f"--timeout {options.timeout}: give a number of seconds above 0")
    client, profile, run_id = api.connect(target), profiles.load(options.profile), runid.new()
    targets: dict[str, BoundImage] = {}

    def snapshot_for(server: BoundServer) -> BoundImage:
        """The target snapshot for a server's architecture (looked up once per architecture)."""
        arch = architecture(server)
        if arch not in targets:
            targets[arch] = lookups.own_snapshot(client, options.to, options.profile, arch)
        return targets[arch]

    rows, moves = plan(client, options, snapshot_for)
    stopped = any(row["status"] == "failed" for row in rows)
    with live.stream(options.events, run_id, command="roll", agents=[m.name for m in moves]) as events:
        if moves:
            shared = prepare(target, client, options, profile, run_id, moves, progress)
            watcher = ActionWatcher(client)
            try:
                rows, stopped = batches(shared, moves, rows, stopped, events, watcher, progress)
            finally:
                watcher.close()
                spread.drop_empty(client, [g.id for g in shared.groups.values()], progress)  # no replacement made
        events.outcome = "failed: the roll stopped" if stopped else \
            f"succeeded: {sum(row['status'] == 'rolled' for row in rows)} agent(s) rolled"
    return {"run_id": run_id, "to": sorted({t.id for t in targets.values()}),
            "agents": sorted(rows, key=lambda row: row["agent_id"]), "stopped": stopped}


def prepare(target: Target, client: Client, o: RollOptions, profile: profiles.Profile, run_id: str,
            moves: list[Move], progress: Callable[[str], None]) -> Shared:
    """What every replacement needs, checked before anything is made: the operator's key (the way into the old and
    the new hosts), the tailnet when one enrols, the profile's firewall; then the spread groups replacements go
    into (provision.spread.successors)."""
    key, keypair = operator_keys(client, "roll reads each agent's code and secrets from its host and checks its "
                                         "replacement over SSH with your key")
    tn: tailnet.Tailnet | None = None
    tags: tuple[str, ...] = ()
    if any(_enrols(m) for m in moves):
        creds = tailnet.credentials(target)
        tn, tags = tailnet.Tailnet(creds), creds.tags
        tn.authenticate()
    firewall, _ = profile_firewall(client, profile)
    groups = spread.successors(client, [m.base for m in moves if not m.in_place and m.ready is None], run_id,
                               progress)
    return Shared(target=target, client=client, options=o, profile=profile, run_id=run_id, operator_key=key,
                  keypair=keypair, tailnet=tn, tags=tags, firewall=firewall, groups=groups)


def _enrols(m: Move) -> bool:
    return (m.base.labels or {}).get("tailscale") != "no"


def replacement_plan(s: Shared, m: Move) -> ProvisionPlan:
    """The move's own provisioning plan: the target snapshot on the old server's type and location, its Tailscale
    choice, its firewalls (an --ssh-from one stays), whether it has IPv4 and its spread group's successor; configured
    over SSH with what it carries (the API URL too, once read from the old host)."""
    base = m.base
    spec = ServerSpec(server_type=type_of(base), image=m.target, locations=(base.location,),
                      ssh_keys=(s.operator_key,), firewalls=tuple(firewalls(base)) or (s.firewall,),
                      ipv4=has_ipv4(base),
                      placement_group=next((s.groups[i] for i in spread.groups_of([base]) if i in s.groups), None))
    return ProvisionPlan(target=s.target, client=s.client, profile=s.profile, deployment=s.run_id, spec=spec,
                         options=ProvisionOptions(agent_ids=[m.name], mode="snapshot", profile=s.profile.name,
                                                  timeout=s.options.timeout),
                         mode="snapshot", operator_key=s.operator_key, keypair=s.keypair,
                         tailnet=s.tailnet if _enrols(m) else None, tags=s.tags, api_url="", bundle=None,
                         code_digest=(base.labels or {}).get(CODE_LABEL), secrets=secretfile.Secrets(), over_ssh=True)


def job(s: Shared, m: Move, events: live.Events, watcher: ActionWatcher, progress: Callable[[str], None],
        cancel: threading.Event) -> tuple[Agent, list[Step[Agent]]]:
    """The replacement's provisioning job and its steps: blue-green, or in place."""
    p = replacement_plan(s, m)
    agent = partial(Agent, client=s.client, progress=progress, timeout=p.timeout(), cancel=cancel, watcher=watcher,
                    keypair=s.keypair, plan=p, agent_id=m.name, stream=events)
    if m.in_place:
        old = m.base
        a = agent(resource_name=m.name, spec=replace(p.spec, labels=dict(old.labels or {})), server=old,
                  ip=address(old), committed=True)
        return a, inplace.steps(m)
    old_id = known(m.old.id, "the old server's id") if m.old else 0
    labels = {k: v for k, v in (m.base.labels or {}).items() if k not in (ROLLING, leases.KEY, hostkey.LABEL)}
    labels.update(mode="snapshot", **{ROLLING: str(old_id), runid.LABEL: s.run_id})  # leased by its create
    a = agent(resource_name=bluegreen.temporary_name(m.name, old_id), spec=replace(p.spec, labels=labels),
              server=m.ready)
    return a, bluegreen.steps(m)


def batches(s: Shared, moves: list[Move], rows: list[Rolled], stopped: bool, events: live.Events,
            watcher: ActionWatcher, progress: Callable[[str], None]) -> tuple[list[Rolled], bool]:
    """The moves, ``batch`` at a time; after a batch with a failure the rest are not rolled."""
    cancel = threading.Event()
    groups = [moves[i:i + s.options.batch] for i in range(0, len(moves), s.options.batch)]
    for number, group in enumerate(groups, 1):
        if stopped:
            rows += [{**row_of(m.name, m.old, m.target), "status": "not rolled",
                      "error": "an earlier batch failed: the roll stopped"} for m in group]
            continue
        names = ", ".join(m.name for m in group)
        progress(f"batch {number}/{len(groups)}: {names}")
        events.emit("batch started", detail=f"{number}/{len(groups)}: {names}")
        done = in_workers(lambda m: replace_one(m, *job(s, m, events, watcher, progress, cancel), events, progress),
                          group, workers=len(group), cancel=cancel, name="roll",
                          interrupted=lambda: progress("interrupted: every replacement not yet in service is "
                                                       "deleted; its old host keeps serving"))
        rows += done
        stopped = any(row["status"] != "rolled" for row in done)
    return rows, stopped


def replace_one(m: Move, a: Agent, steps: list[Step[Agent]], events: live.Events,
                progress: Callable[[str], None]) -> Rolled:
    t0 = time.monotonic()
    row = row_of(m.name, m.old, m.target)
    try:
        run_steps(steps, a, lambda line: None, events.step_reporter(m.name))
    except StepFailed as exc:
        progress(f"[{m.name}] failed: {exc}")
        events.emit("failed", agent=m.name, detail=str(exc))
        kept_id = a.server.id if a.committed and a.server is not None else None
        if m.in_place:
            serving = "" if m.rebuilding_since else "; the host was not touched and still serves the agent"
        else:
            serving = "" if a.committed or m.old is None else "; the old server still serves the agent"
        return {**row, "status": "failed", "error": str(exc) + serving, "new_server_id": kept_id}
    assert a.server is not None, "a replacement that got all the way is the agent's server"
    progress(f"[{m.name}] rolled onto snapshot {m.target.id}: server {a.server.id} ({time.monotonic() - t0:.1f} s)")
    return {**row, "status": "rolled", "new_server_id": a.server.id, "seconds": round(time.monotonic() - t0, 2)}
