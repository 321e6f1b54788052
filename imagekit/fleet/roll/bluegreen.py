"""Blue-green: the replacement boots beside the old server under a temporary name, is configured with what was
carried and waited for as a new agent is; then the old server goes and the replacement takes the agent's name."""

from __future__ import annotations

from ...cloud import actions, api
from ...cloud.api import known
from ...cloud.servers import DELETE_TIMEOUT
from ...errors import CloudError
from ...pipeline import Step
from ...provision import halfmade, spread
from ...provision.agent import Agent, AgentRunning, AuthKey, Enrolled, UserData
from ...steps.ready import WaitCloudInit, WaitSSH
from ...steps.server import Boot, CreateServer
from .carry import CarryFromOldHost, ConfigureCarried, DiscardStale, drop_nodes
from .plan import ROLLING, Move


def temporary_name(name: str, old_id: int) -> str:
    """The replacement's name until it takes over: unique per old server, so a second roll of the same agent
    meets it (and is refused) instead of making another."""
    return f"{name[:44]}-roll-{old_id}"


def steps(m: Move) -> list[Step[Agent]]:
    """A replacement's pipeline; one an earlier roll got ready only takes over."""
    found: list[Step[Agent]] = [DiscardStale(s) for s in m.discard]
    if m.ready is not None:
        return [*found, TakeOver(m)]
    return [*found, CarryFromOldHost(m), AuthKey(), UserData(), CreateServer(name="create server"), Boot(), WaitSSH(),
            WaitCloudInit(), Enrolled(), ConfigureCarried(m), AgentRunning(), halfmade.MarkReady(), TakeOver(m)]


class TakeOver:
    """The old server goes, the replacement takes the agent's name; the old host's Tailscale devices go last
    (only those created before the replacement existed)."""

    name = "take over"

    def __init__(self, move: Move):
        self.move = move

    def run(self, a: Agent) -> None:
        new, old, name = a.server, self.move.old, self.move.name
        assert new is not None, "TakeOver follows the step that made the replacement (or finds it ready)"
        if old is not None:
            deleting = a.client.servers.delete(old)  # refused (protected, locked): the old host keeps serving
            a.committed = True  # accepted: the old server is going, so from here on the replacement is the agent
            actions.wait(a.client, deleting, DELETE_TIMEOUT, f"deleting the old server {old.id}")
            a.event("old server deleted", f"server {old.id}")
            spread.drop_empty(a.client, spread.groups_of([old]), a.progress)  # replacements are in another
        a.committed = True
        labels = {k: v for k, v in (new.labels or {}).items() if k != ROLLING}
        try:
            a.server = a.client.servers.update(new, name=name, labels=labels)
        except Exception as exc:
            raise CloudError(f"renaming server {new.id} to {name} failed ({api.explain(exc)}): it serves the agent "
                             "under its temporary name; run the roll again to finish") from None
        if old is not None:
            drop_nodes(a, name, known(old.created, "the old server's creation time"), new.created)
        a.event("took over", f"server {new.id} is {name}")
