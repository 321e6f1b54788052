"""``provision --spread``: a run's agents in a ``spread`` placement group of their own, so that Hetzner puts each
on another physical host (one host's failure takes one agent). imagekit makes the group, named after the run and
labelled ``role=spread``, before the agents, and deletes it with the last of its agents: the run's own cleanup
when none of them got made, ``deprovision`` and ``gc`` once they delete its last server, a roll once its last old
host goes. A roll keeps the spread without overflowing a full group: the replacements of a group's agents go into
a successor group of the roll's own, made the same way. A spread group holds at most LIMIT servers: a run asking
for more fails before anything exists, naming the limit. A group a killed run left empty goes at the next ``gc``
once it is older than ABANDONED (a run makes its servers seconds after its group)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from hcloud import APIException, Client
from hcloud.placement_groups import BoundPlacementGroup
from hcloud.servers import BoundServer

from .. import runid
from ..cloud import api
from ..errors import InputError
from .options import ProvisionOptions
from .state import Run

LIMIT = 10  # Hetzner's: servers in one spread placement group
ROLE = "spread"
ABANDONED = 600  # seconds an empty group of imagekit's may be before gc takes it for a killed run's


def check(o: ProvisionOptions) -> None:
    if o.spread and len(o.agent_ids) > LIMIT:
        raise InputError(f"--spread: a spread placement group holds at most {LIMIT} servers (Hetzner's limit) and "
                         f"this run has {len(o.agent_ids)} agents: provision at most {LIMIT} per run (each run gets "
                         "a group of its own), or drop --spread")


class SpreadGroup:
    """The run's group, in the spec of every agent it creates; deleted at the end when no agent is in it."""

    name = "placement group"

    def __init__(self) -> None:
        self.group: BoundPlacementGroup | None = None

    def run(self, r: Run) -> None:
        p = r.plan
        if not p.options.spread or not r.todo:
            return
        self.group = ensure(p.client, f"imagekit-spread-{p.deployment}", p.deployment, p.profile.name)
        r.plan = replace(p, spec=replace(p.spec, placement_group=self.group))
        r.progress(f"placement group {self.group.id} ({self.group.name}): the agents go on different physical hosts")

    def cleanup(self, r: Run) -> None:
        if self.group is not None:
            drop_empty(r.client, [self.group.id], r.progress)


def ensure(client: Client, name: str, run: str, profile: str) -> BoundPlacementGroup:
    """The run's group named ``name``: made, or found when the run is run again (one imagekit made for it)."""
    labels = api.labels(role=ROLE, profile=profile, **{runid.LABEL: run})
    found = client.placement_groups.get_by_name(name)
    if found is not None and not labels.items() <= (found.labels or {}).items():
        raise InputError(f"a placement group named {name} exists and imagekit did not make it for this run: "
                         "give another --run-id")
    return found or client.placement_groups.create(name=name, type="spread", labels=labels).placement_group


def successors(client: Client, servers: Iterable[BoundServer], run: str, profile: str,
               progress: Callable[[str], None]) -> dict[int, BoundPlacementGroup]:
    """For each spread group of imagekit's that ``servers`` (the old hosts a roll replaces) are in, a group of the
    roll's own for their replacements, keyed by the old group's id. An operator's own group is left alone (its
    replacements are made outside it)."""
    made: dict[int, BoundPlacementGroup] = {}
    try:
        for ident in sorted({i for i in groups_of(servers) if i is not None}):
            if not _ours(client.placement_groups.get_by_id(ident)):
                continue
            made[ident] = ensure(client, f"imagekit-spread-{run}-{ident}", run, profile)
            progress(f"placement group {made[ident].id} ({made[ident].name}): the replacements of group {ident}'s "
                     "agents go on different physical hosts")
    except BaseException:
        drop_empty(client, [g.id for g in made.values()], progress)
        raise
    return made


def abandoned(client: Client, grace: float, run: str | None, progress: Callable[[str], None]) -> list[int]:
    """Empty spread groups of imagekit's a killed run left: ``run``'s, or any older than ABANDONED (+ ``grace``)."""
    selector = api.selector(role=ROLE, **({runid.LABEL: run} if run else {}))
    cutoff = time.time() - ABANDONED - grace
    old = [g.id for g in client.placement_groups.get_all(label_selector=selector) if not g.servers and
           (run is not None or api.known(g.created, "the group's creation time").timestamp() < cutoff)]
    return drop_empty(client, old, progress)


def _ours(group: BoundPlacementGroup) -> bool:
    labels = group.labels or {}
    return labels.get("managed-by") == "imagekit" and labels.get("role") == ROLE


def groups_of(servers: Iterable[BoundServer]) -> list[int | None]:
    return [s.placement_group.id for s in servers if s.placement_group is not None]


def drop_empty(client: Client, ids: Iterable[int | None], progress: Callable[[str], None]) -> list[int]:
    """The groups of ``ids`` that imagekit made for a spread and that hold no server any more, deleted."""
    deleted = []
    for ident in sorted({i for i in ids if i is not None}):
        try:
            group = client.placement_groups.get_by_id(ident)
        except APIException as exc:
            if exc.code == "not_found":
                continue
            raise
        if not _ours(group) or group.servers:
            continue
        progress(f"deleting placement group {ident} ({group.name}): the last of its agents is gone")
        client.placement_groups.delete(group)
        deleted.append(ident)
    return deleted
