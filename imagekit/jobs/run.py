"""``run``: one-shot jobs. Inputs are checked before anything is created; then each job runs as its own
pipeline in a worker thread, on its own fresh host from the profile's snapshot (or a stock image with
the playbooks), and every host is deleted at the end of its job. Ctrl-C and SIGTERM cancel every job
and each unwinds; gc sweeps what a SIGKILLed run left, once its deadline label has passed."""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass, field

from hcloud import Client

from .. import profiles, secretfile, tailnet
from ..build import playbook_variables
from ..cloud import api, lookups
from ..errors import CloudError
from ..host import playbook
from ..pipeline import in_workers, sigterm_interrupts
from ..target import Target
from . import sandbox
from .job import Output, run_job
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


def run_jobs(target: Target, options: JobOptions, progress, json: bool = False) -> dict:
    """Run every job of ``options``; the result lists each job's outcome, ``exit_code`` the run's."""
    client = api.connect(target)
    r = JobRun(target=target, client=client, options=options, progress=progress)
    check_inputs(r)
    progress(f"run {r.run_id}: {len(options.job_ids)} job(s) on {r.server_type.name} from {r.mode} image "
             f"{r.image.id} ({r.image.description or r.image.name}), on the {target.describe()}")
    prefixed = json or len(options.job_ids) > 1
    with sigterm_interrupts():
        jobs = in_workers(lambda job: run_job(r, job, job_name(job), Output(job, prefixed, to_stderr=json)),
                          options.job_ids, workers=options.parallel, cancel=r.cancel, name="job",
                          interrupted=lambda: progress("interrupted: every job is deleting its server"))
    for job in jobs:
        job.update(server_type=r.server_type.name, mode=r.mode, image=r.image.id,
                   cost=_cost(r.server_type, job["location"], job.pop("lifetime_seconds")))
    return {"run_id": r.run_id, "exit_code": exit_code(jobs), "jobs": jobs}


def exit_code(jobs: list[dict]) -> int:
    """The first failing job's: its command's code (124 on timeout), else 1 when imagekit failed it."""
    for job in jobs:
        if job["exit_code"]:
            return job["exit_code"]
        if job["error"]:
            return 1
    return 0


def _cost(server_type, location: str | None, seconds: float) -> dict | None:
    """What the job's server cost: Hetzner bills every started hour at the type's price in its location."""
    price = next((p for p in server_type.prices or [] if p.get("location") == location), None)
    if price is None:
        return None
    hourly = float(price["price_hourly"]["gross"])
    hours = max(1, math.ceil(seconds / 3600))
    return {"location": location, "price_hourly_gross": hourly, "billed_hours": hours,
            "gross": round(hourly * hours, 4), "currency": "EUR"}
