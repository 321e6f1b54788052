"""What a ``run`` of one-shot jobs is made of, checked before anything is created; the jobs' workers read it."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from hcloud import Client

from .. import profiles, secretfile, tailnet
from ..cloud import api, lookups
from ..errors import CloudError
from ..host import playbook
from ..steps.install import playbook_variables
from ..target import Target
from . import sandbox
from .options import JobOptions, check_options, job_name
from .transfer import Tree


@dataclass
class JobRun:
    """What the run's jobs share; their workers read it."""

    target: Target
    client: Client
    options: JobOptions
    progress: object
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3))
    mode: str = ""
    image: object | None = None
    server_type: object | None = None
    locations: list = field(default_factory=lambda: [None])  # tried in order; [None]: the API's choice
    tree: Tree | None = None
    secrets: secretfile.Secrets = field(default_factory=secretfile.Secrets)
    sandbox: list[tuple[str, str]] = field(default_factory=list)
    user: str = "openclaw"
    tailnet: tailnet.Tailnet | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def labels(self, job_id: str, deadline: dict[str, str]) -> dict[str, str]:
        """A job's server and key: gc finds them by role and sweeps them past the deadline."""
        return api.labels(role="job", profile=self.options.profile, mode=self.mode, run=self.run_id,
                          **{"job-id": job_name(job_id).removeprefix("imagekit-job-")}, **deadline)


def check_inputs(r: JobRun) -> None:
    """Everything that can be wrong is found here, before anything is created."""
    o, c = r.options, r.client
    r.tree = check_options(o)
    r.secrets = secretfile.load(o.secrets_file)
    book = playbook.load(o.profile, playbook_variables(o.profile, o.base_image, None, r.target.local, r.run_id))
    profile = profiles.load(o.profile)
    r.sandbox, r.user = sandbox.properties(book, profile.unit_file), profile.user
    r.server_type = lookups.server_type(c, o.server_type, r.progress)  # the first request also checks the token
    r.locations = lookups.locations(c, o.location)
    r.mode, r.image = lookups.image_for(c, o.mode, None if o.snapshot == "latest" else o.snapshot, o.profile,
                                        o.base_image, r.server_type.architecture, r.progress)
    if o.tailscale:
        r.tailnet = tailnet.Tailnet(tailnet.credentials(r.target))
        r.tailnet.authenticate()
    taken = {s.name for s in c.servers.get_all(label_selector=api.selector(role="job"))}
    if clash := sorted(job_name(j) for j in o.job_ids if job_name(j) in taken):
        raise CloudError(f"a job server named {', '.join(clash)} exists already (a job of that id is running, or "
                         "was kept): choose another --job-id, or delete it with `invoke gc --role job`")
