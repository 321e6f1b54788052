"""``verify``: boot a throw-away server from a snapshot, run the image's checks and the clone
checks (its own machine-id, host keys, cloud-init ran), delete it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import runid
from .build import BuildJob, BuildOptions, RunChecks
from .cloud import api, lookups, spec
from .host import playbook
from .pipeline import Step, run_steps
from .steps.install import playbook_variables
from .steps.key import TemporaryKey
from .steps.ready import WaitCloudInit, WaitSSH
from .steps.server import Boot, CreateServer
from .target import Target


def verify_snapshot(target: Target, snapshot: str, server_type: str, progress: Callable[[str], None],
                    profile: str = "agent") -> dict[str, Any]:
    client = api.connect(target)
    run_id = runid.new()
    labels = api.labels(role="builder", **{"build-id": run_id, runid.LABEL: run_id})
    server = spec.resolve(client, server_type=server_type, location=None, warn=progress, labels=labels,
                          image=lambda arch: lookups.snapshot(client, snapshot, profile, arch))
    image = server.image
    found = image.labels or {}
    options = BuildOptions(profile=found.get("profile", profile), base_image=found.get("base-image", "debian-12"),
                           server_type=server_type)
    job = BuildJob(client=client, progress=progress, resource_name=f"imagekit-verify-{run_id}", labels=labels,
                   spec=server, target=target, options=options, build_id=run_id)
    job.playbook = playbook.load(options.profile, playbook_variables(options.profile, options.base_image, None,
                                                                     target.local, run_id))
    progress(f"verifying snapshot {image.id} ({image.description}) on the {target.describe()}")
    steps: list[Step[BuildJob]] = [TemporaryKey(), CreateServer("throw-away server"), Boot("throw-away server"),
                                   WaitSSH(), WaitCloudInit(), RunChecks(clone=True)]
    durations = run_steps(steps, job, progress)
    return {"snapshot_id": image.id, "ok": True, "durations": durations}
