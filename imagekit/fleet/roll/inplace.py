"""--in-place: the agent's own server rebuilt from the target (same id and address; the agent is down meanwhile),
with user data made now (a fresh single-use key, and a new host key: the user data it was created with holds a
key revoked long ago, and maybe no host key). It is the agent throughout, so no cleanup deletes it; it is labelled
rebuilding until its agent runs again, and pinned to its new host key from the rebuild on."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ...cloud.api import known
from ...host import hostkey
from ...pipeline import Step
from ...provision import halfmade, userdata
from ...provision.agent import Agent, AgentRunning, AuthKey, Enrolled
from ...steps.ready import WaitCloudInit, WaitSSH
from ...steps.server import Boot
from .carry import CarryFromOldHost, ConfigureCarried, DiscardStale, drop_nodes
from .plan import Move


def steps(m: Move) -> list[Step[Agent]]:
    return [*[DiscardStale(s) for s in m.discard], CarryFromOldHost(m), AuthKey(), Rebuild(m), Boot(), WaitSSH(),
            WaitCloudInit(), Enrolled(), DropOldNodes(m), ConfigureCarried(m), AgentRunning(), Rebuilt(m)]


class Rebuild:
    name = "rebuild"

    def __init__(self, move: Move):
        self.move = move

    def run(self, a: Agent) -> None:
        assert a.server is not None, "an in-place roll's job starts with the agent's own server"
        key = hostkey.new()
        data = hostkey.with_host_key(userdata.render(a.plan.config(a.agent_id, a.secret), a.plan.inline_code()), key)
        labels = {**(a.server.labels or {}), "mode": "snapshot", hostkey.LABEL: key.fingerprint,
                  **halfmade.REBUILDING.label(time.time() + a.timeout)}
        a.server = a.client.servers.update(a.server, labels=labels)
        a.pin = hostkey.pin(a.server)
        self.move.rebuilding_since = datetime.now(timezone.utc)
        a.action = a.client.servers.rebuild(a.server, self.move.target, user_data=data).action
        a.event("rebuilding", f"server {a.server.id} from snapshot {self.move.target.id}")


class DropOldNodes:
    name = "old tailscale nodes"

    def __init__(self, move: Move):
        self.move = move

    def run(self, a: Agent) -> None:
        drop_nodes(a, self.move.name, known(self.move.base.created, "the server's creation time"),
                   self.move.rebuilding_since)


class Rebuilt:
    name = "take over"

    def __init__(self, move: Move):
        self.move = move

    def run(self, a: Agent) -> None:
        assert a.server is not None, "an in-place roll's job starts with the agent's own server"
        a.server = halfmade.REBUILDING.cleared(a.client, a.server)
        a.event("took over", f"server {a.server.id} rebuilt from snapshot {self.move.target.id}")
