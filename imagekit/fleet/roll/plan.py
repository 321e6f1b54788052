"""Which agents a roll moves and what each needs: one listing of the profile's agents (and any replacements an
earlier roll left), grouped by agent; agents with nothing to do, or that cannot be rolled, get their row now."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from hcloud import Client
from hcloud.images import BoundImage
from hcloud.servers import BoundServer

from ...cloud.api import known
from ...errors import InputError
from ...host import hostkey
from ...provision import halfmade
from ..selection import agent_servers

ROLLING = "rolling-from"


@dataclass
class RollOptions:
    to: str = "latest"  # a snapshot id, or the newest of the profile
    agent_ids: list[str] = field(default_factory=list)
    selector: str | None = None
    profile: str = "agent"
    batch: int = 1
    timeout: float | None = None  # seconds per replacement to be ready (default: provision's)
    in_place: bool = False  # rebuild each agent's own server (same id and address, an outage) instead
    events: str | None = None
    trust_unpinned: bool = False  # read old hosts without a host-key label (made before pinning) trusting their key


class Rolled(TypedDict):
    """An agent's row in ``roll``'s result."""

    agent_id: str  # its server name
    old_server_id: int | None
    new_server_id: int | None
    old_snapshot_id: int | None
    new_snapshot_id: int | None
    status: str | None  # rolled | current | failed | not rolled (None until it is known)
    seconds: float | None
    error: str | None


@dataclass
class Move:
    """One agent's move onto ``target``, and what it carries from its old host as it goes (in memory only)."""

    name: str  # the agent's server name, which the replacement takes over
    old: BoundServer | None  # the server it replaces; None once an earlier run deleted it
    target: BoundImage
    ready: BoundServer | None = None  # a replacement an earlier roll got ready: it only has to take over
    discard: list[BoundServer] = field(default_factory=list)  # replacements left by earlier rolls
    in_place: bool = False
    trust_unpinned: bool = False  # the old host has no pinned key yet: its current one is trusted this once
    code: bytes = b""
    secrets_env: bytes | None = field(default=None, repr=False)
    authorized_keys: str | None = None  # in place: the keys the host had (the rebuild brings back its creation's)
    rebuilding_since: datetime | None = None

    @property
    def base(self) -> BoundServer:
        """The server whose type, location and labels the replacement takes."""
        found = self.old or self.ready
        assert found is not None, "a move has an old server or a ready replacement"
        return found


def plan(client: Client, o: RollOptions, snapshot_for: Callable[[BoundServer], BoundImage]
         ) -> tuple[list[Rolled], list[Move]]:
    """Rows for agents with nothing to do (or that cannot be rolled), and the moves to make."""
    servers = agent_servers(client, o.agent_ids, ",".join(filter(None, [f"profile={o.profile}", o.selector])))
    groups: dict[str, list[BoundServer]] = {}
    for server in servers:
        groups.setdefault((server.labels or {}).get("agent-id") or known(server.name, "the server's name"),
                          []).append(server)
    if not groups:
        raise InputError(f"no agent of profile '{o.profile}' matches: check --agent-id / --selector with "
                         "`invoke list`")
    rows: list[Rolled] = []
    moves: list[Move] = []
    for name, group in sorted(groups.items()):
        old = next((s for s in group if s.name == name and ROLLING not in (s.labels or {})), None)
        stale = [s for s in group if ROLLING in (s.labels or {})]
        target = snapshot_for(old or stale[0])
        row = row_of(name, old, target)
        if why := next((halfmade.busy(s) for s in stale if halfmade.busy(s)), None):
            rows.append({**row, "status": "failed", "error": f"another roll is at work: {why}"})
            continue
        ready = next((s for s in stale if halfmade.deadline(s) is None and s.image and s.image.id == target.id),
                     None)
        discard = [s for s in stale if s is not ready]
        if old is None and ready is None:
            rows.append({**row, "status": "failed", "error": "its server is gone: provision the agent again"})
            continue
        if ready is None and old is not None and old.image is not None and old.image.id == target.id \
                and (old.labels or {}).get("mode") == "snapshot" and hostkey.LABEL in (old.labels or {}):
            rows.append({**row, "status": "current"})  # without a pinned host key it moves, to get one
            continue
        if old is not None and halfmade.REBUILDING.of(old) is not None:
            rows.append({**row, "status": "failed", "error": (
                "another in-place roll is at work on it" if not halfmade.REBUILDING.passed(old) else
                "an in-place roll of it died after the rebuild, so its code and secrets went with the old disk: "
                "bring them back with `invoke update --agent-bundle ... --secrets-file ...` (then remove its "
                f"{halfmade.REBUILDING.key} label), or deprovision and provision it again")})
            continue
        if ready is None and old is not None and (old.status != "running" or halfmade.deadline(old) is not None):
            rows.append({**row, "status": "failed", "error": f"not a ready, running agent (server {old.status}): "
                                                             "provision it first"})
            continue
        moves.append(Move(name=name, old=old, target=target, ready=ready, discard=discard,
                          in_place=o.in_place and ready is None, trust_unpinned=o.trust_unpinned))
    return rows, moves


def row_of(name: str, old: BoundServer | None, target: BoundImage) -> Rolled:
    old_image = old.image.id if old is not None and old.image is not None and \
        (old.labels or {}).get("mode") == "snapshot" else None
    return {"agent_id": name, "old_server_id": old.id if old is not None else None, "new_server_id": None,
            "old_snapshot_id": old_image, "new_snapshot_id": target.id, "status": None, "seconds": None,
            "error": None}
