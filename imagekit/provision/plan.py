"""A provisioning plan: everything a run's agents are made of, checked and looked up before anything exists, and
unchanged after (the profile as loaded, the server spec, the image and mode, the operator's keys, the tailnet,
the agents' API URL, bundle and secrets, and whether the code travels in the user data or over SSH). The run's
state (provision.state) is what its steps make and find; a roll composes the same plan for each replacement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hcloud import Client
from hcloud.images import BoundImage
from hcloud.ssh_keys import BoundSSHKey

from .. import bundledigest, profiles, runid, secretfile, settings, tailnet, ttl
from ..agentbundle import Bundle
from ..agentconf import AgentConfig, agent_config, agents_api_url, bundle
from ..bundledigest import BUNDLE_LABEL, CODE_LABEL
from ..cloud import api, family, lookups, networks
from ..cloud.spec import ServerSpec, resolve
from ..errors import InputError
from ..host.keys import KeyPair
from ..steps.operator import matching, own_key
from ..target import Target
from . import userdata
from .options import ProvisionOptions, check_options


@dataclass(frozen=True)
class ProvisionPlan:
    target: Target
    client: Client
    options: ProvisionOptions
    profile: profiles.Profile
    deployment: str
    spec: ServerSpec  # type, locations, image and the operator's key; per agent its labels and user data
    mode: str  # snapshot | fallback
    operator_key: BoundSSHKey | None
    keypair: KeyPair | None  # the operator's private half when the run holds it; else a temporary key is made
    tailnet: tailnet.Tailnet | None  # None: the hosts do not enrol
    tags: tuple[str, ...]
    api_url: str
    bundle: Bundle | None  # None: a roll's replacement, which gets the code its old host ran
    code_digest: str | None  # the bundle's tree (bundledigest): the agents' code-digest label (a roll: the old's)
    secrets: secretfile.Secrets
    over_ssh: bool  # the hosts wait for imagekit to configure them over SSH (secrets, staged code, a roll's code)
    stage_code: bool = False  # the bundle does not fit in the user data: imagekit stages it over SSH

    def inline_code(self) -> bytes | None:
        """The code the user data carries, if any."""
        return None if self.stage_code or self.bundle is None or self.code_baked else self.bundle.data()

    @property
    def image(self) -> BoundImage:
        return self.spec.image

    @property
    def enrols(self) -> bool:
        return self.tailnet is not None

    def timeout(self) -> float:
        return self.options.timeout or (1800.0 if self.mode == "fallback" else 600.0)

    def config(self, agent: str, auth_key: str | None) -> AgentConfig:
        return agent_config(
            self.profile, agent, api_url=self.api_url, mode=self.mode, deployment=self.deployment,
            image=str(self.image.id if self.mode == "snapshot" else self.image.name), tags=self.tags,
            auth_key=auth_key if self.enrols else None, local=self.target.local, over_ssh=self.over_ssh,
            ipv4=self.options.ipv4)

    @property
    def code_baked(self) -> bool:
        """The snapshot holds this very code (its bundle-digest label): provisioning stages none."""
        return self.mode == "snapshot" and (self.image.labels or {}).get(BUNDLE_LABEL) == self.code_digest

    def agent_labels(self, name: str, **extra: str) -> dict[str, str]:
        """An agent server's labels (gc and deprovision find agents by them; status shows its code's digest)."""
        return {**self.options.labels,  # the operator's own (--label): never one of imagekit's keys
                **api.labels(role="agent", profile=self.profile.name, mode=self.mode, deployment=self.deployment,
                             tailscale="yes" if self.enrols else "no",
                             **{"agent-id": name, runid.LABEL: self.deployment},
                             **({CODE_LABEL: self.code_digest} if self.code_digest else {}),
                             **ttl.label(self.options.ttl), **extra)}


def make_plan(target: Target, client: Client, o: ProvisionOptions, deployment: str,
              progress: Callable[[str], None]) -> ProvisionPlan:
    """Everything that can be wrong is found here, before anything is created."""
    check_options(o)
    if not o.ipv4:
        family.require_ipv6_route(target)
    profile = profiles.load(o.profile)
    agent_bundle = bundle(o.agent_bundle, profile)  # the whole tree checked before any cloud call
    wanted = settings.choose(o.snapshot, "HETZNER_SNAPSHOT_ID")
    spec = resolve(client, server_type=o.server_type, location=o.location,  # the first request checks the token
                   image=lambda arch: lookups.image_for(client, o.mode, wanted, o.profile, o.base_image, arch,
                                                        progress), ipv4=o.ipv4)
    attached, reached_on = networks.attach(client, o.networks, o.ssh_via)
    spec = replace(spec, networks=attached, ssh_network=reached_on)
    mode = lookups.mode_of(spec.image)
    if mode == "fallback" and not o.wait:
        raise InputError("fallback mode installs over SSH and cannot skip waiting: drop --no-wait")
    found_secrets = secretfile.load(o.secrets_file)
    if found_secrets and not o.wait:
        raise InputError("--secrets-file: the secrets go to the hosts over SSH once they boot, so provision must "
                         "wait: drop --no-wait")
    ident = o.operator_key or settings.get("HETZNER_SSH_KEY_ID")
    operator_key = lookups.ssh_key(client, ident) if ident else None
    keypair = None
    if o.keypair is not None:
        keypair = matching(o.keypair, operator_key, "the private key given")
    elif path := settings.get("SSH_PRIVATE_KEY_PATH"):
        keypair = own_key(path, operator_key)
    if not o.wait and operator_key is None:  # without any key Hetzner would give the server a root password
        raise InputError("--no-wait puts no key of imagekit's on the servers: set HETZNER_SSH_KEY_ID to your key "
                         "(a server without an SSH key gets a root password), or let provision wait")
    api_url = agents_api_url(o.api_url, target.local)
    tn: tailnet.Tailnet | None = None
    tags: tuple[str, ...] = ()
    if o.tailscale and profile.tailscale:
        creds = tailnet.credentials(target)
        tn, tags = tailnet.Tailnet(creds), creds.tags
        tn.authenticate()
    plan = ProvisionPlan(target=target, client=client, options=o, profile=profile, deployment=deployment,
                         spec=replace(spec, ssh_keys=(operator_key,) if operator_key else ()),
                         mode=mode, operator_key=operator_key, keypair=keypair, tailnet=tn, tags=tags,
                         api_url=api_url, bundle=agent_bundle, code_digest=bundledigest.of_bundle(agent_bundle),
                         secrets=found_secrets, over_ssh=bool(found_secrets))
    if plan.code_baked:  # the snapshot holds this very code: none travels, the host keeps what it has
        return plan
    if all(userdata.fits(plan.config(a, userdata.PLACEHOLDER_KEY), agent_bundle) for a in o.agent_ids):
        return plan
    if not o.wait:
        raise InputError(f"the agent bundle {agent_bundle.source} ({agent_bundle.size} bytes packed) does not fit in "
                         f"the user data ({userdata.LIMIT} bytes at most), so provision stages it over SSH once the "
                         "host boots, which --no-wait skips: drop --no-wait (or make the bundle smaller)")
    return replace(plan, stage_code=True, over_ssh=True)
