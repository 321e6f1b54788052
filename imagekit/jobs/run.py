"""``run``: one-shot jobs. Inputs are checked before anything is created; then each job runs as its own
pipeline in a worker thread, on its own fresh host from the profile's snapshot (or a stock image with
the playbooks), and every host is deleted at the end of its job. Ctrl-C, SIGTERM and SIGHUP cancel every job
and each unwinds; gc sweeps what a SIGKILLed run left once its lease has ended (or at once: `gc --run ID`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from hcloud.server_types import BoundServerType

from ..cloud import api
from ..pipeline import in_workers, sigterm_interrupts
from ..steps import caps
from ..target import Target
from .job import Output, run_job
from .options import JobOptions, job_name
from .plan import make_plan
from .results import JobCost, JobResult


def run_jobs(target: Target, options: JobOptions, progress: Callable[[str], None], json: bool = False
             ) -> dict[str, Any]:
    """Run every job of ``options``; the result lists each job's outcome, ``exit_code`` the run's."""
    r = make_plan(target, api.connect(target), options, progress)
    caps.check(r.client, "run", len(options.job_ids), r.spec)
    stype, image = r.spec.server_type, r.spec.image
    progress(f"run {r.run_id}: {len(options.job_ids)} job(s) on {stype.name} from {r.mode} image "
             f"{image.id} ({image.description or image.name}), on the {target.describe()}")
    prefixed, cancel = json or len(options.job_ids) > 1, threading.Event()
    with sigterm_interrupts():
        jobs = in_workers(lambda job: run_job(r, job, job_name(job), Output(job, prefixed, to_stderr=json), progress,
                                              cancel),
                          options.job_ids, workers=options.parallel, cancel=cancel, name="job",
                          interrupted=lambda: progress("interrupted: every job is deleting its server"))
    for job in jobs:
        cost = _cost(stype, job["location"], job.pop("lifetime_seconds"))
        job["server_type"], job["mode"], job["image"], job["cost"] = stype.name, r.mode, image.id, cost
        progress(_summary(job))
    return {"run_id": r.run_id, "exit_code": exit_code(jobs), "jobs": jobs}


def _summary(job: JobResult) -> str:
    """A job's outcome in one line (progress: stdout holds the commands' own output)."""
    what = job["error"] or ("timed out" if job["timed_out"] else f"exit code {job['exit_code']}")
    s = job["seconds"]
    return (f"job {job['job_id']}: {what}; ready {s['create_to_ready']} s, ran {s['run']} s, torn down in "
            f"{s['teardown']} s" + (" (server kept)" if job["kept"] else ""))


def exit_code(jobs: list[JobResult]) -> int:
    """The first failing job's: its command's code (124 on timeout), else 1 when imagekit failed it."""
    for job in jobs:
        if job["exit_code"]:
            return job["exit_code"]
        if job["error"]:
            return 1
    return 0


def _cost(server_type: BoundServerType, location: str | None, seconds: float) -> JobCost | None:
    """What the job's server cost: Hetzner bills every started hour at the type's price in its location."""
    price = next((p for p in server_type.prices or [] if p.get("location") == location), None)
    if price is None:
        return None
    hourly = float(price["price_hourly"]["gross"])
    hours = max(1, math.ceil(seconds / 3600))
    return {"location": location, "price_hourly_gross": hourly, "billed_hours": hours,
            "gross": round(hourly * hours, 4), "currency": "EUR"}
