"""A provisioning run's state: what its steps make (the temporary key, the firewall, the action poller, each
agent's result) and what it found before making anything (agents that exist, half-made servers to replace,
warm pool hosts to claim). What the run is made of is its plan (provision.plan), which never changes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NotRequired, TypedDict

from hcloud import Client
from hcloud.firewalls import BoundFirewall
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from .. import agentid, profiles, runid
from .. import events as live
from ..cloud import api, networks
from ..cloud.actions import ActionWatcher
from ..errors import InputError
from ..host.keys import KeyPair
from ..pool import claim, members
from . import halfmade, userdata
from .plan import ProvisionPlan


class AgentResult(TypedDict):
    """An agent's row in provision's result (``--json``: ``agents``; the text table: render.agents)."""

    agent_id: str
    name: str
    mode: str | None  # snapshot | fallback | pool; an existing server's mode label
    image: NotRequired[int | None]  # the image it boots (not said of an existing server)
    server_id: int | None
    ipv4: str | None
    status: str  # ready | created | existing | failed
    seconds_to_ready: float | None
    error: str | None
    events: NotRequired[dict[str, float]]  # seconds from the start to each milestone (a new agent's)


@dataclass
class Run:
    plan: ProvisionPlan
    progress: Callable[[str], None]
    existing: dict[str, BoundServer] = field(default_factory=dict)  # server name → server (ready, or its run alive)
    replace: dict[str, BoundServer] = field(default_factory=dict)  # server name → abandoned half-made server
    todo: list[str] = field(default_factory=list)  # agent ids without a server, or with an abandoned one
    pool: claim.Candidates | None = None  # warm hosts the agents claim before creating cold
    pool_size: int = 0  # pool hosts of the profile when the run began (what --refill tops up to)
    keypair: KeyPair | None = None  # how readiness is checked: the operator's key, else the temporary key's
    key_file: Path | None = None
    ssh_key: BoundSSHKey | None = None  # the temporary key, when the run made one
    login_key: str | None = None  # the run's key's public half, when it travels in the user data instead
    keep_on_failure: bool = False
    firewall: BoundFirewall | None = None
    firewall_created: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    watcher: ActionWatcher | None = None
    agents: list[AgentResult] = field(default_factory=list)
    events: live.Events = field(default_factory=live.Events)
    failed: bool = False

    @property
    def client(self) -> Client:
        return self.plan.client

    @property
    def profile(self) -> profiles.Profile:
        return self.plan.profile

    @property
    def labels(self) -> dict[str, str]:  # the temporary key's (leased: gc sweeps it once its run is gone)
        return api.labels(role="provision", deployment=self.plan.deployment, **{runid.LABEL: self.plan.deployment})

    @property
    def resource_name(self) -> str:
        return f"imagekit-provision-{self.plan.deployment}"

    def keep(self) -> bool:
        return False


def survey(plan: ProvisionPlan, progress: Callable[[str], None]) -> Run:
    """The run's state before it makes anything: the agents' servers found (ready, half-made, abandoned), the warm
    pool hosts it may claim, and each new agent's user data checked against the API's limit."""
    o, c = plan.options, plan.client
    r = Run(plan=plan, progress=progress, keypair=plan.keypair)
    find_pool(r)
    names = {agentid.server_name(a): a for a in o.agent_ids}
    found = {s.name: s for s in c.servers.get_all(label_selector=api.selector(role="agent")) if s.name in names}
    r.replace = {name: s for name, s in found.items() if halfmade.abandoned(s)}
    r.existing = {name: s for name, s in found.items() if name not in r.replace}
    r.todo = [a for name, a in names.items() if name not in r.existing]
    for agent in r.todo:
        userdata.render(plan.config(agent, userdata.PLACEHOLDER_KEY), plan.inline_code(), plan.code_baked)
    return r


def find_pool(r: Run) -> None:
    """The pool hosts this run may claim: ready, of the profile, from the run's snapshot, reached by the operator's
    key, whose private half (SSH_PRIVATE_KEY_PATH) the run holds; listed only when they can be used."""
    p, o = r.plan, r.plan.options
    if o.refill and (p.keypair is None or p.mode != "snapshot" or not o.wait):
        raise InputError("--refill makes pool hosts from the snapshot, reached with your own key: set "
                         "SSH_PRIVATE_KEY_PATH and HETZNER_SSH_KEY_ID, and use snapshot mode without --no-wait")
    if p.keypair is None or p.mode != "snapshot" or not o.wait or not (o.pool or o.refill):
        return
    found = members.members(p.client, p.profile.name, o.ipv4)  # the pool of the agents' address family
    r.pool_size = len(found)
    assert p.operator_key is not None, "a private key the run holds is the operator's key's (plan.matching)"
    if o.pool and not o.spread:  # a running host cannot join the run's placement group
        r.pool = claim.Candidates([s for s in found if members.claimable_host(s, p.image.id, p.operator_key.id)
                                   and networks.same(s, p.spec)])
