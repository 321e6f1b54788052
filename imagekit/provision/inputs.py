"""provision's options, and every check that can fail before anything is created."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import agentid, profiles, secretfile, settings, tailnet
from ..cloud import api, lookups
from ..errors import InputError
from ..host.keys import KeyPair, load_ed25519
from . import halfmade, userdata

if TYPE_CHECKING:
    from .run import Run

MODES = ("auto", "snapshot", "fallback")
LOCAL_API_URL = "http://127.0.0.1:3000"  # placeholder on the local cloud: the example agent only logs it


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


def check_options(o: ProvisionOptions) -> ProvisionOptions:
    """What is wrong with the options alone (no API needed); the options when nothing is."""
    if o.mode not in MODES:
        raise InputError(f"--mode {o.mode!r}: choose one of {', '.join(MODES)}")
    if o.parallel < 1:
        raise InputError(f"--parallel {o.parallel}: give at least 1")
    profiles.load(o.profile)
    if o.timeout is not None and o.timeout <= 0:
        raise InputError(f"--timeout {o.timeout}: give a number of seconds above 0")
    for agent in o.agent_ids:
        agentid.server_name(agent)
    return o


def check_inputs(r: Run) -> None:
    """Everything that can be wrong is found here, before anything is created; fills in the run's plan."""
    o, c = r.options, r.client
    check_options(o)
    r.profile = profiles.load(o.profile)
    r.server_type = lookups.server_type(c, o.server_type)  # the first request also checks the token
    r.locations = lookups.locations(c, o.location)
    r.mode, r.image = lookups.image_for(c, o.mode, settings.choose(o.snapshot, "HETZNER_SNAPSHOT_ID"), o.profile,
                                        o.base_image, r.server_type.architecture, r.progress)
    if r.mode == "fallback" and not o.wait:
        raise InputError("fallback mode installs over SSH and cannot skip waiting: drop --no-wait")
    r.secrets = secretfile.load(o.secrets_file)
    if r.secrets and not o.wait:
        raise InputError("--secrets-file: the secrets go to the hosts over SSH once they boot, so provision must "
                         "wait: drop --no-wait")
    ident = o.operator_key or settings.get("HETZNER_SSH_KEY_ID")
    r.operator_key = lookups.ssh_key(c, ident) if ident else None
    if o.keypair is not None:
        r.keypair = matching(o.keypair, r.operator_key, "the private key given")
    elif path := settings.get("SSH_PRIVATE_KEY_PATH"):
        r.keypair = own_key(path, r.operator_key)
    if not o.wait and r.operator_key is None:  # without any key Hetzner would give the server a root password
        raise InputError("--no-wait puts no key of imagekit's on the servers: set HETZNER_SSH_KEY_ID to your key "
                         "(a server without an SSH key gets a root password), or let provision wait")
    r.api_url = agents_api_url(o.api_url, r.target.local)
    r.bundle = userdata.bundle(o.agent_bundle, r.profile)
    if r.enrols:
        creds = tailnet.credentials(r.target)
        r.tags = creds.tags
        r.tailnet = tailnet.Tailnet(creds)
        r.tailnet.authenticate()
    find_pool(r)
    names = {agentid.server_name(a): a for a in o.agent_ids}
    found = {s.name: s for s in c.servers.get_all(label_selector=api.selector(role="agent")) if s.name in names}
    r.replace = {name: s for name, s in found.items() if halfmade.abandoned(s)}
    r.existing = {name: s for name, s in found.items() if name not in r.replace}
    r.todo = [a for name, a in names.items() if name not in r.existing]
    for agent in r.todo:
        userdata.render(r.config(agent, userdata.PLACEHOLDER_KEY), r.bundle)


def find_pool(r: Run) -> None:
    """The pool hosts this run may claim: ready, of the profile, from the run's snapshot, reached by the operator's
    key, whose private half (SSH_PRIVATE_KEY_PATH) the run holds; listed only when they can be used."""
    from ..pool import claim, members

    o = r.options
    if o.refill and (r.keypair is None or r.mode != "snapshot" or not o.wait):
        raise InputError("--refill makes pool hosts from the snapshot, reached with your own key: set "
                         "SSH_PRIVATE_KEY_PATH and HETZNER_SSH_KEY_ID, and use snapshot mode without --no-wait")
    if r.keypair is None or r.mode != "snapshot" or not o.wait or not (o.pool or o.refill):
        return
    found = members.members(r.client, o.profile)
    r.pool_size = len(found)
    if o.pool:
        r.pool = claim.Candidates([s for s in found if members.claimable_host(s, r.image.id, r.operator_key.id)])


def agents_api_url(given: str | None, local: bool) -> str:
    """The agents' API: --api-url, else AURA_API_URL; on the local cloud a placeholder the example agent logs."""
    url = settings.choose(given, "AURA_API_URL") or (LOCAL_API_URL if local else "")
    if not url:
        raise InputError("the agents' API URL is not set: set AURA_API_URL or pass --api-url")
    return userdata.check_api_url(url)


def own_key(path: str, operator_key) -> KeyPair:
    """The operator's private key: readiness checks use it instead of a temporary key."""
    return matching(load_ed25519(path), operator_key, f"SSH_PRIVATE_KEY_PATH {path}")


def matching(pair: KeyPair, operator_key, what: str) -> KeyPair:
    if operator_key is None or operator_key.public_key.split()[1] != pair.public_openssh.split()[1]:
        raise InputError(f"{what} is not the private half of HETZNER_SSH_KEY_ID: set HETZNER_SSH_KEY_ID to the "
                         "Hetzner key made from its public key")
    return pair
