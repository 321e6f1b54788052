"""provision's options, and what is wrong with them alone (no API needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import agentid, profiles
from ..cloud import networks
from ..errors import InputError
from ..host.keys import KeyPair

MODES = ("auto", "snapshot", "fallback")


@dataclass
class ProvisionOptions:
    agent_ids: list[str]
    mode: str = "auto"
    snapshot: str | None = None  # id; default HETZNER_SNAPSHOT_ID, else the newest of the profile
    profile: str = "agent"
    server_type: str = "cx23"
    location: str | None = None  # a name, or names tried in order when one has no capacity
    base_image: str = "debian-12"  # fallback mode's stock image
    api_url: str | None = None  # default AURA_API_URL
    tailscale: bool = True
    wait: bool = True
    timeout: float | None = None  # seconds per agent; default 600 (snapshot) or 1800 (fallback)
    parallel: int = 5
    agent_bundle: Path | None = None
    operator_key: str | None = None  # SSH key id or name for the operator's logins; default HETZNER_SSH_KEY_ID
    keypair: KeyPair | None = None  # its private half when the caller holds it in memory; default SSH_PRIVATE_KEY_PATH
    secrets_file: Path | None = None  # dotenv file of the agents' secrets; default IMAGEKIT_SECRETS_FILE
    events: str | None = None  # live events to this file (``-``: stdout)
    pool: bool = True  # claim a warm pool host first (snapshot mode, with the operator's private key)
    refill: bool = False  # afterwards, top the pool up to the size it had
    run_id: str | None = None  # the run's id (every resource's `run` label and the agents' deployment); default: new
    labels: dict[str, str] = field(default_factory=dict)  # the operator's own, on every agent (cloud.userlabels)
    ssh_from: tuple[str, ...] = ()  # SSH open only to these networks once the agents are ready (steps.sshfrom)
    ipv4: bool = True  # a public IPv4 on every server; off: IPv6 only, reached over IPv6 (cloud.family)
    ttl: float | None = None  # seconds the agents live: their expires-at label, which gc acts on (imagekit.ttl)
    spread: bool = False  # the run's agents in a spread placement group of their own (provision.spread)
    networks: tuple[str, ...] = ()  # private networks (names or ids) every server joins (cloud.networks)
    ssh_via: str = "public"  # private: reached on their address on the first of networks


def check_options(o: ProvisionOptions) -> ProvisionOptions:
    """What is wrong with the options alone (no API needed); the options when nothing is."""
    if o.mode not in MODES:
        raise InputError(f"--mode {o.mode!r}: choose one of {', '.join(MODES)}")
    if o.parallel < 1:
        raise InputError(f"--parallel {o.parallel}: give at least 1")
    profiles.require(o.profile)
    if o.timeout is not None and o.timeout <= 0:
        raise InputError(f"--timeout {o.timeout}: give a number of seconds above 0")
    for agent in o.agent_ids:
        agentid.server_name(agent)
    if o.ssh_from and not o.wait:
        raise InputError("--ssh-from: imagekit checks it still reaches the hosts once they are ready: drop --no-wait")
    networks.check(o.networks, o.ssh_via)
    return o
