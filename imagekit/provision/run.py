"""The provisioning run: the plan made (every input checked) and what exists found → temporary key → the
profile's firewall → the agents, each its own pipeline in a worker thread → [--refill: the pool topped up]. A
failing agent unwinds only its own steps; Ctrl-C cancels every worker and each unwinds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hcloud.servers import BoundServer

from .. import agentid, runid
from .. import events as live
from ..cloud import api
from ..cloud.actions import ActionWatcher
from ..cloud.servers import address
from ..host.keys import new_ed25519
from ..pipeline import Step, in_workers, run_steps
from ..pool.fill import PoolPlan, fill_to, pool_spec
from ..steps import caps
from ..steps.firewall import ProfileFirewall, profile_firewall
from ..steps.key import TemporaryKey
from ..target import Target
from . import spread
from .agent import provision_agent
from .halfmade import busy
from .options import ProvisionOptions
from .plan import make_plan
from .sources import NarrowSSH
from .state import AgentResult, Run, survey


class ProvisionKey(TemporaryKey[Run]):
    """The run's own SSH key: how imagekit checks readiness; removed from every host at the end. Not needed when
    the operator's own key is at hand (SSH_PRIVATE_KEY_PATH). When the project holds the operator's key
    (HETZNER_SSH_KEY_ID), the run's key travels in each server's user data and never enters the project (no key
    to create, lease or delete: two requests fewer per run); otherwise it is a temporary key in the project."""

    def run(self, r: Run) -> None:
        if not r.todo or r.keypair is not None:
            return
        if r.plan.operator_key is None:
            super().run(r)
            return
        r.keypair = new_ed25519(r.resource_name)
        r.login_key = r.keypair.public_openssh


class Agents:
    """Each agent in a worker thread; one agent's failure does not stop the others."""

    name = "agents"

    def run(self, r: Run) -> None:
        r.watcher = ActionWatcher(r.client)
        for agent in r.plan.options.agent_ids:
            server = r.existing.get(agentid.server_name(agent))
            if server is None:
                continue
            if why := busy(server):  # half-made, and its run may still be at work: neither ready nor ours
                r.progress(f"[{server.name}] {why}")
                r.agents.append({**_existing(agent, server), "status": "failed", "error": why})
                continue
            r.progress(f"[{server.name}] exists already: server {server.id} ({server.status}); nothing created")
            r.agents.append(_existing(agent, server))
        try:
            r.agents += in_workers(lambda agent: provision_agent(r, agent), r.todo, workers=r.plan.options.parallel,
                                   cancel=r.cancel, name="agent",
                                   interrupted=lambda: r.progress("interrupted: every agent is cleaning up what it "
                                                                  "created"))
        finally:
            r.watcher.close()


class Refill:
    """--refill: the pool back to the size it had, from the run's snapshot, once the agents are done."""

    name = "refill pool"

    def run(self, r: Run) -> None:
        p = r.plan
        if not p.options.refill:
            return
        claimed = sum(a["mode"] == "pool" for a in r.agents)
        r.progress(f"pool: {claimed} host(s) claimed; topping the pool up to {r.pool_size}")
        assert p.operator_key is not None and p.keypair is not None, "--refill needs the operator's key (find_pool)"
        firewall = r.firewall or profile_firewall(p.client, p.profile)[0]
        pool = PoolPlan(client=p.client, profile=p.profile.name, key=p.operator_key, keypair=p.keypair,
                        spec=pool_spec(p.spec, p.profile.name, p.operator_key, firewall), parallel=p.options.parallel,
                        run_id=p.deployment)
        fill_to(pool, r.pool_size, r.progress, r.cancel)


def _existing(agent: str, server: BoundServer) -> AgentResult:
    return {"agent_id": agent, "server_id": server.id, "name": api.known(server.name, "the server's name"),
            "ipv4": address(server), "mode": (server.labels or {}).get("mode"), "status": "existing",
            "seconds_to_ready": None, "error": None}


def provision(target: Target, options: ProvisionOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    """Provision every agent of ``options``; the result lists each with its outcome."""
    spread.check(options)
    client = api.connect(target)
    deployment = runid.given(options.run_id)
    before = api.requests_served(target)
    t0 = time.monotonic()
    with live.stream(options.events, deployment, command="provision", agents=options.agent_ids) as events:
        p = make_plan(target, client, options, deployment, progress)
        r = survey(p, progress)
        caps.check(client, "provision", len(r.todo), p.spec)
        r.events = events
        progress(f"provision {deployment}: {len(options.agent_ids)} agent(s), profile {p.profile.name}, "
                 f"{p.mode} mode, on the {target.describe()}")
        steps: list[Step[Run]] = [*([ProvisionKey()] if options.wait else []), ProfileFirewall(),
                                  spread.SpreadGroup(), Agents(), NarrowSSH(), Refill()]
        run_steps(steps, r, lambda line: progress(line) if not line.startswith("    ") else None,
                  events.step_reporter())
        bad = [a["agent_id"] for a in r.agents if a["status"] == "failed"]
        events.outcome = f"failed: {len(bad)} of {len(r.agents)} agent(s): {', '.join(bad)}" if bad else \
            f"succeeded: {len(r.agents)} agent(s)"
    after = api.requests_served(target)
    return {"deployment": deployment, "mode": p.mode, "image": p.image.id, "agents": r.agents,
            "seconds": round(time.monotonic() - t0, 2),
            "api_requests": after - before if before is not None and after is not None else None}
