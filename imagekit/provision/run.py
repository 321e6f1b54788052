"""The provisioning run: inputs checked → temporary key → the profile's firewall → the agents,
each its own pipeline in a worker thread. A failing agent unwinds only its own steps; Ctrl-C
cancels every worker and each unwinds."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hcloud import APIException, Client
from hcloud.firewalls import BoundFirewall, FirewallRule

from .. import agentid, profiles, secretfile, tailnet
from .. import events as live
from ..cloud import actions, api
from ..errors import CloudError
from ..host.keys import KeyPair
from ..pipeline import in_workers, run_steps
from ..steps.key import TemporaryKey
from ..target import Target
from . import userdata
from .agent import provision_agent
from .halfmade import busy
from .inputs import ProvisionOptions, check_inputs


@dataclass
class Run:
    """What the whole run shares; the agents' workers read it."""

    target: Target
    client: Client
    options: ProvisionOptions
    progress: object
    profile: profiles.Profile | None = None  # the options' profile, as data
    deployment: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3))
    mode: str = ""
    image: object | None = None
    server_type: object | None = None
    locations: list = field(default_factory=lambda: [None])  # tried in order; [None]: the API's choice
    operator_key: object | None = None
    tailnet: tailnet.Tailnet | None = None
    tags: tuple[str, ...] = ()
    api_url: str = ""
    bundle: bytes = b""
    secrets: secretfile.Secrets = field(default_factory=secretfile.Secrets)
    existing: dict[str, object] = field(default_factory=dict)  # server name → server (ready, or its run alive)
    replace: dict[str, object] = field(default_factory=dict)  # server name → abandoned half-made server
    todo: list[str] = field(default_factory=list)  # agent ids without a server, or with an abandoned one
    keypair: KeyPair | None = None
    key_file: Path | None = None
    ssh_key: object | None = None
    keep_on_failure: bool = False
    firewall: BoundFirewall | None = None
    firewall_created: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    watcher: actions.ActionWatcher | None = None
    agents: list[dict] = field(default_factory=list)
    events: live.Events = field(default_factory=live.Events)
    pool: object | None = None  # pool.claim.Candidates: warm hosts the agents claim before creating cold
    pool_size: int = 0  # pool hosts of the profile when the run began (what --refill tops up to)
    failed: bool = False

    @property
    def labels(self) -> dict[str, str]:  # the temporary key's; gc sweeps these by role and age
        return api.labels(role="provision", deployment=self.deployment)

    @property
    def resource_name(self) -> str:
        return f"imagekit-provision-{self.deployment}"

    def keep(self) -> bool:
        return False

    def timeout(self) -> float:
        return self.options.timeout or (1800.0 if self.mode == "fallback" else 600.0)

    @property
    def enrols(self) -> bool:
        """Whether hosts join the tailnet: asked for (not --no-tailscale) and the profile's hosts do."""
        return self.options.tailscale and self.profile.tailscale

    def config(self, agent: str, auth_key: str | None) -> userdata.AgentConfig:
        return userdata.agent_config(
            self.profile, agent, api_url=self.api_url, mode=self.mode, deployment=self.deployment,
            image=str(self.image.id if self.mode == "snapshot" else self.image.name), tags=self.tags,
            auth_key=auth_key if self.enrols else None, local=self.target.local, over_ssh=bool(self.secrets))


class ProvisionKey(TemporaryKey):
    """The run's temporary SSH key: how imagekit checks readiness; removed from every host at the end.
    Not needed when the operator's own key is at hand (SSH_PRIVATE_KEY_PATH)."""

    def run(self, r: Run) -> None:
        if r.todo and r.keypair is None:
            super().run(r)


def profile_firewall(client: Client, profile: str) -> tuple[BoundFirewall, bool]:
    """The profile's labelled Hetzner firewall (its data's inbound rules), made if missing; (firewall, made now)."""
    found = client.firewalls.get_all(label_selector=api.selector(role="firewall", profile=profile))
    if found:
        return found[0], False
    name = f"imagekit-{profile}"
    rules = [FirewallRule(direction="in", protocol=rule.protocol, port=rule.port, source_ips=["0.0.0.0/0", "::/0"],
                          description=rule.description) for rule in profiles.load(profile).firewall]
    try:
        return client.firewalls.create(name=name, rules=rules,
                                       labels=api.labels(role="firewall", profile=profile)).firewall, True
    except APIException as exc:
        if exc.code != "uniqueness_error":
            raise
    firewall = client.firewalls.get_by_name(name)  # made meanwhile by a concurrent run, or by hand
    if firewall is None or (firewall.labels or {}).get("managed-by") != "imagekit":
        raise CloudError(f"a firewall named '{name}' exists but imagekit did not make it: rename or "
                         f"delete it, or label it managed-by=imagekit,role=firewall,profile={profile}")
    return firewall, False


class ProfileFirewall:
    """One labelled Hetzner firewall per profile, created once and reused."""

    name = "firewall"

    def run(self, r: Run) -> None:
        if r.todo:
            r.firewall, r.firewall_created = profile_firewall(r.client, r.options.profile)

    def cleanup(self, r: Run) -> None:
        # A firewall this run made is kept for the next runs, unless no server of this run is left on it.
        if r.firewall_created and not r.client.firewalls.get_by_id(r.firewall.id).applied_to:
            r.client.firewalls.delete(r.firewall)


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
        from ..pool.fill import Plan, fill_to

        if not r.options.refill:
            return
        claimed = sum(a["mode"] == "pool" for a in r.agents)
        r.progress(f"pool: {claimed} host(s) claimed; topping the pool up to {r.pool_size}")
        firewall = r.firewall or profile_firewall(r.client, r.options.profile)[0]
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
