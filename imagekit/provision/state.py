"""What a provisioning run shares: its inputs, resolved once, and what its steps make and find; the agents'
workers read it."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hcloud import Client
from hcloud.firewalls import BoundFirewall

from .. import events as live
from .. import profiles, secretfile, tailnet
from ..agentconf import AgentConfig, agent_config
from ..cloud import actions, api
from ..host.keys import KeyPair
from ..target import Target
from .options import ProvisionOptions


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

    def config(self, agent: str, auth_key: str | None) -> AgentConfig:
        return agent_config(
            self.profile, agent, api_url=self.api_url, mode=self.mode, deployment=self.deployment,
            image=str(self.image.id if self.mode == "snapshot" else self.image.name), tags=self.tags,
            auth_key=auth_key if self.enrols else None, local=self.target.local, over_ssh=bool(self.secrets))
