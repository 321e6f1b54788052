"""What a ``run`` of one-shot jobs is made of, checked before anything is created and unchanged after; the jobs'
workers read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hcloud import Client

from .. import profiles, runid, secretfile, tailnet, ttl
from ..bake import require_baked
from ..cloud import api, family, lookups, networks
from ..cloud.spec import ServerSpec, resolve
from ..errors import CloudError, InputError
from ..host import playbook
from ..steps.install import playbook_variables
from ..target import Target
from . import sandbox
from .options import PREFIX, JobOptions, check_options, job_name
from .transfer import Tree


@dataclass(frozen=True)
class JobPlan:
    target: Target
    client: Client
    options: JobOptions
    run_id: str
    spec: ServerSpec  # type, locations and image; per job its labels
    mode: str  # snapshot | fallback
    tree: Tree | None  # the work directory, checked
    secrets: secretfile.Secrets
    sandbox: tuple[tuple[str, str], ...]  # the profile's agent unit's confinement, for the command's unit
    user: str
    tailnet: tailnet.Tailnet | None

    def labels(self, job_id: str) -> dict[str, str]:
        """A job's server and key (leased while the run lives: gc sweeps them once it is gone, or --run's)."""
        return {**self.options.labels,  # the operator's own (--label): never one of imagekit's keys
                **api.labels(role="job", profile=self.options.profile, mode=self.mode,
                             tailscale="yes" if self.tailnet else "no",
                             **{runid.LABEL: self.run_id, "job-id": job_name(job_id).removeprefix(PREFIX)},
                             **ttl.label(self.options.ttl))}


def make_plan(target: Target, client: Client, o: JobOptions, progress: Callable[[str], None]) -> JobPlan:
    """Everything that can be wrong is found here, before anything is created."""
    run_id = runid.given(o.run_id)
    tree = check_options(o)
    if not o.ipv4:
        family.require_ipv6_route(target)
    found_secrets = secretfile.load(o.secrets_file)
    book = playbook.load(o.profile, playbook_variables(o.profile, o.base_image, None, target.local, run_id))
    profile = profiles.load(o.profile)
    wanted = None if o.snapshot == "latest" else o.snapshot
    spec = resolve(client, server_type=o.server_type, location=o.location, warn=progress,  # checks the token first
                   image=lambda arch: lookups.image_for(client, o.mode, wanted, o.profile, o.base_image, arch,
                                                        progress), ipv4=o.ipv4)
    attached, reached_on = networks.attach(client, o.networks, o.ssh_via)
    spec = replace(spec, networks=attached, ssh_network=reached_on)
    if o.container_image is not None:
        if lookups.mode_of(spec.image) != "snapshot":
            raise InputError(f"--container-image {o.container_image}: no snapshot of profile {o.profile} to run it "
                             "from (a container runs an image baked into the snapshot): build one first")
        require_baked(spec.image, o.container_image)
    tn = None
    if o.tailscale:
        tn = tailnet.Tailnet(tailnet.credentials(target))
        tn.authenticate()
    taken = {s.name for s in client.servers.get_all(label_selector=api.selector(role="job"))}
    if clash := sorted(job_name(j) for j in o.job_ids if job_name(j) in taken):
        raise CloudError(f"a job server named {', '.join(clash)} exists already (a job of that id is running, or "
                         "was kept): choose another --job-id, or delete it with `invoke gc --role job`")
    return JobPlan(target=target, client=client, options=o, run_id=run_id, spec=spec, mode=lookups.mode_of(spec.image),
                   tree=tree, secrets=found_secrets, sandbox=tuple(sandbox.properties(book, profile.unit_file)),
                   user=profile.user, tailnet=tn)
