"""Half-made agents. An agent server carries its run's lease (``lease-until``, cloud/leases.py) from its creation
until it is ready, so that a server left by a run that died in between (SIGKILL, power loss) is never taken for a
ready agent: once the lease has ended ``gc`` sweeps it and the next ``provision`` of the agent replaces it. While
the lease lives its run is at work: the server is neither used nor replaced.

An in-place roll's server carries ``rebuilding-until`` from its rebuild until its agent runs again: it is the
agent's own server (gc never sweeps it), not a ready agent in between either."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hcloud import Client
from hcloud.servers import BoundServer

from .. import runid, tailnet
from ..cloud import leases
from ..cloud.servers import delete
from ..steps.job import HostJob
from .plan import ProvisionPlan

LABEL = leases.KEY
deadline = leases.until  # None for a ready agent
abandoned = leases.expired


@dataclass(frozen=True)
class Rebuilding:
    """``rebuilding-until=<unix time>``: the time after which the in-place roll at work on the server is over."""

    key: str = "rebuilding-until"

    def label(self, until: float) -> dict[str, str]:
        return {self.key: str(int(until))}

    def of(self, server: BoundServer) -> float | None:
        value = (server.labels or {}).get(self.key)
        return None if value is None else float(value) if value.isdigit() else 0.0

    def passed(self, server: BoundServer) -> bool:
        until = self.of(server)
        return until is not None and time.time() > until

    def cleared(self, client: Client, server: BoundServer) -> BoundServer:
        return client.servers.update(server, labels={k: v for k, v in (server.labels or {}).items() if k != self.key})


REBUILDING = Rebuilding()


def busy(server: BoundServer) -> str | None:
    """Why a half-made server can be neither used nor replaced yet (its run is at work); else None."""
    until = deadline(server)
    if until is None or abandoned(server):
        return None
    free = time.strftime("%H:%M:%S UTC", time.gmtime(until))
    return (f"server {server.id} is still being provisioned by run {_run(server)}: wait for that run, or "
            f"provision the agent again after {free} if it has died (its lease ends then), or deprovision it")


def died(server: BoundServer) -> str:
    """How an abandoned server came about, for progress lines."""
    return f"its provisioning run {_run(server)} died before the agent was ready"


def _run(server: BoundServer) -> str:
    labels = server.labels or {}
    return labels.get(runid.LABEL) or labels.get("deployment", "?")


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
    """The lease comes off last: only a host that got all the way is a ready agent to gc and provision."""

    name = "mark ready"

    def run(self, a: HostJob) -> None:
        assert a.server is not None, "MarkReady follows the step that made the server"
        a.server = leases.end(a.server)
        a.event("ready")
