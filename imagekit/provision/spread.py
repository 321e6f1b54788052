"""``provision --spread``: a run's agents in a ``spread`` placement group of their own, so that Hetzner puts each
on another physical host (one host's failure takes one agent). imagekit makes the group, named after the run and
labelled ``role=spread``, before the agents, and deletes it with the last of its agents: the run's own cleanup
when none of them got made, ``deprovision`` and ``gc`` once they delete its last server, a roll once its last old
host goes. A roll keeps the spread: the replacements of a group's agents go into a second group made for the roll
(``successors``), as the old group is full until its old hosts go. A spread group holds at most LIMIT servers: a run
asking for more fails before anything exists, naming the limit."""

from __future__ import annotations

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
        name, labels = f"imagekit-spread-{p.deployment}", api.labels(role=ROLE, profile=p.profile.name,
                                                                     **{runid.LABEL: p.deployment})
        found = p.client.placement_groups.get_by_name(name)  # the run's own, when it is run again
        if found is not None and not labels.items() <= (found.labels or {}).items():
            raise InputError(f"a placement group named {name} exists and imagekit did not make it for this run: "
                             "give another --run-id")
        self.group = found or p.client.placement_groups.create(name=name, type="spread", labels=labels
                                                               ).placement_group
        r.plan = replace(p, spec=replace(p.spec, placement_group=self.group))
        r.progress(f"placement group {self.group.id} ({name}): the agents go on different physical hosts")

    def cleanup(self, r: Run) -> None:
        if self.group is not None:
            drop_empty(r.client, [self.group.id], r.progress)


def groups_of(servers: Iterable[BoundServer]) -> list[int | None]:
    return [s.placement_group.id for s in servers if s.placement_group is not None]


def _ours(group: BoundPlacementGroup) -> bool:
    labels = group.labels or {}
    return labels.get("managed-by") == "imagekit" and labels.get("role") == ROLE


def successors(client: Client, servers: Iterable[BoundServer], run_id: str,
               progress: Callable[[str], None]) -> dict[int, BoundPlacementGroup]:
    """For each spread group of imagekit's that ``servers`` (a roll's old hosts) are in, by its id, the group their
    replacements go into: made for the roll's run ``run_id`` (found when it exists: the same run again)."""
    made: dict[int, BoundPlacementGroup] = {}
    for ident in sorted({i for i in groups_of(servers) if i is not None}):
        old = client.placement_groups.get_by_id(ident)
        if not _ours(old):
            continue  # the operator's own group: replacements are made outside it
        name = f"imagekit-spread-{run_id}-{ident}"
        labels = api.labels(role=ROLE, profile=(old.labels or {}).get("profile", ""), **{runid.LABEL: run_id})
        made[ident] = client.placement_groups.get_by_name(name) or client.placement_groups.create(
            name=name, type="spread", labels=labels).placement_group
        progress(f"placement group {made[ident].id} ({name}): the replacements of the agents in {old.name}, each on "
                 "another physical host")
    return made


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
