"""Half-made agents. An agent server carries ``provisioning-until=<unix time>`` (its run's deadline)
from its creation until it is ready, so that a server left by a run that died in between (SIGKILL,
power loss) is never taken for a ready agent: ``gc`` sweeps it and the next ``provision`` of the
agent replaces it. Past the deadline plus its slack a live run has failed and deleted its server, so a
server still labelled then is abandoned."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from hcloud import Client
from hcloud.servers import BoundServer

from .. import tailnet
from ..cloud.deadlines import DeadlineLabel
from ..cloud.servers import delete
from ..steps.job import HostJob
from .plan import ProvisionPlan

HALF_MADE = DeadlineLabel("provisioning-until", default_slack=60)
LABEL = HALF_MADE.key
label = HALF_MADE.label
# An in-place roll's server from its rebuild until its agent runs again: not a ready agent in between either.
REBUILDING = DeadlineLabel("rebuilding-until", default_slack=60)
deadline = HALF_MADE.of  # None for a ready agent
abandoned = HALF_MADE.passed


def busy(server: BoundServer) -> str | None:
    """Why a half-made server can be neither used nor replaced yet (its run may still be at work); else None."""
    until = deadline(server)
    if until is None or abandoned(server):
        return None
    free = time.strftime("%H:%M:%S UTC", time.gmtime(until + HALF_MADE.slack))
    return (f"server {server.id} is still being provisioned by run {_run(server)}: wait for that run, or "
            f"provision the agent again after {free} to replace it, or deprovision it")


def died(server: BoundServer) -> str:
    """How an abandoned server came about, for progress lines."""
    return f"its provisioning run {_run(server)} died before the agent was ready"


def _run(server: BoundServer) -> str:
    return (server.labels or {}).get("deployment", "?")


class Provisioning(Protocol):
    """What replacing an abandoned server works on: an agent's job (provision.agent.Agent)."""

    failed: bool

    @property
    def progress(self) -> Callable[[str], None]: ...

    @property
    def client(self) -> Client: ...

    @property
    def plan(self) -> ProvisionPlan: ...


class ReplaceAbandoned:
    """An abandoned server of the agent goes first, with its Tailscale device; then it is made anew."""

    name = "replace half-made server"

    def __init__(self, old: BoundServer):
        self.old = old

    def run(self, a: Provisioning) -> None:
        old = self.old
        a.progress(f"[{old.name}] replacing half-made server {old.id}: {died(old)}")
        delete(a.client, old, f"deleting half-made server {old.id}")
        tailnet.remove_devices(a.plan.target, [old], a.progress, a.plan.tailnet)


class MarkReady:
    """The label comes off last: only a host that got all the way is a ready agent to gc and provision."""

    name = "mark ready"

    def run(self, a: HostJob) -> None:
        assert a.server is not None, "MarkReady follows the step that made the server"
        a.server = HALF_MADE.cleared(a.client, a.server)
        a.event("ready")
