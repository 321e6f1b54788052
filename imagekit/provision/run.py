"""The provisioning run: inputs checked → temporary key → the profile's firewall → the agents,
each its own pipeline in a worker thread. A failing agent unwinds only its own steps; Ctrl-C
cancels every worker and each unwinds."""

from __future__ import annotations

import time

from .. import agentid
from .. import events as live
from ..cloud import actions, api
from ..pipeline import in_workers, run_steps
from ..pool.fill import Plan, fill_to
from ..steps.firewall import ProfileFirewall, profile_firewall
from ..steps.key import TemporaryKey
from ..target import Target
from .agent import provision_agent
from .halfmade import busy
from .inputs import check_inputs
from .options import ProvisionOptions
from .state import Run


class ProvisionKey(TemporaryKey):
    """The run's temporary SSH key: how imagekit checks readiness; removed from every host at the end.
    Not needed when the operator's own key is at hand (SSH_PRIVATE_KEY_PATH)."""

    def run(self, r: Run) -> None:
        if r.todo and r.keypair is None:
            super().run(r)


class Agents:
    """Each agent in a worker thread; one agent's failure does not stop the others."""

    name = "agents"

    def run(self, r: Run) -> None:
        r.watcher = actions.ActionWatcher(r.client)
        for agent in r.options.agent_ids:
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
            r.agents += in_workers(lambda agent: provision_agent(r, agent), r.todo, workers=r.options.parallel,
                                   cancel=r.cancel, name="agent",
                                   interrupted=lambda: r.progress("interrupted: every agent is cleaning up what it "
                                                                  "created"))
        finally:
            r.watcher.close()

    def cleanup(self, r: Run) -> None:
        pass


class Refill:
    """--refill: the pool back to the size it had, from the run's snapshot, once the agents are done."""

    name = "refill pool"

    def run(self, r: Run) -> None:
        if not r.options.refill:
            return
        claimed = sum(a["mode"] == "pool" for a in r.agents)
        r.progress(f"pool: {claimed} host(s) claimed; topping the pool up to {r.pool_size}")
        firewall = r.firewall or profile_firewall(r.client, r.profile)[0]
        fill_to(Plan(client=r.client, profile=r.options.profile, server_type=r.server_type, locations=r.locations,
                     image=r.image, key=r.operator_key, keypair=r.keypair, firewall=firewall, progress=r.progress,
                     parallel=r.options.parallel, cancel=r.cancel), r.pool_size)

    def cleanup(self, r: Run) -> None:
        pass


def _existing(agent: str, server) -> dict:
    return {"agent_id": agent, "server_id": server.id, "name": server.name, "ipv4": server.public_net.ipv4.ip,
            "mode": (server.labels or {}).get("mode"), "status": "existing", "seconds_to_ready": None,
            "error": None}


def provision(target: Target, options: ProvisionOptions, progress) -> dict:
    """Provision every agent of ``options``; the result lists each with its outcome."""
    client = api.connect(target)
    r = Run(target=target, client=client, options=options, progress=progress)
    before = api.requests_served(target)
    t0 = time.monotonic()
    with live.stream(options.events, r.deployment, command="provision", agents=options.agent_ids) as r.events:
        check_inputs(r)
        progress(f"provision {r.deployment}: {len(options.agent_ids)} agent(s), profile {options.profile}, "
                 f"{r.mode} mode, on the {target.describe()}")
        steps = ([ProvisionKey()] if options.wait else []) + [ProfileFirewall(), Agents(), Refill()]
        run_steps(steps, r, lambda line: progress(line) if not line.startswith("    ") else None,
                  r.events.step_reporter())
        bad = [a["agent_id"] for a in r.agents if a["status"] == "failed"]
        r.events.outcome = f"failed: {len(bad)} of {len(r.agents)} agent(s): {', '.join(bad)}" if bad else \
            f"succeeded: {len(r.agents)} agent(s)"
    after = api.requests_served(target)
    return {"deployment": r.deployment, "mode": r.mode, "image": r.image.id, "agents": r.agents,
            "seconds": round(time.monotonic() - t0, 2),
            "api_requests": after - before if before is not None and after is not None else None}
