"""A server round trip: key, server with user data, SSH in, cloud-init ran it, delete everything.

The quickest proof that a cloud (Hetzner or the local one) and this host work together. It is
the shared steps of every command, so it also proves them; everything is labelled and deleted
on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from .cloud import api, lookups, spec
from .errors import HostError
from .host import probe
from .pipeline import Step, run_steps
from .steps.job import HostJob
from .steps.key import TemporaryKey
from .steps.ready import WaitCloudInit, WaitSSH
from .steps.server import Boot, CreateServer
from .target import Target

MARKER = "/root/imagekit-roundtrip"


class UserDataRan:
    name = "user data ran"

    def __init__(self, run_id: str):
        self.run_id = run_id

    def run(self, s: HostJob) -> None:
        assert s.conn is not None and s.server is not None
        code, out = probe.sh(s.conn, f"cat {MARKER}")
        if code != 0 or self.run_id not in out:
            raise HostError(f"cloud-init did not run the user data on server {s.server.id}: {out[-500:]}")


def roundtrip(target: Target, *, server_type: str = "cx23", image: str = "debian-12",
              location: str | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    client = api.connect(target)
    run_id = secrets.token_hex(4)
    labels = api.labels(role="roundtrip", run=run_id)
    server = spec.resolve(client, server_type=server_type, location=location, warn=progress, labels=labels,
                          image=lambda arch: lookups.base_image(client, image, arch),
                          user_data=f"#cloud-config\nruncmd:\n  - [sh, -c, 'echo {run_id} > {MARKER}']\n")
    job = HostJob(client=client, progress=progress, resource_name=f"imagekit-roundtrip-{run_id}", labels=labels,
                  spec=server, timeout=300)
    t0 = time.monotonic()
    steps: list[Step[HostJob]] = [TemporaryKey(), CreateServer(), Boot(), WaitSSH(), WaitCloudInit(),
                                  UserDataRan(run_id)]
    durations = run_steps(steps, job, progress)
    seconds, elapsed = {}, 0.0
    for done, key in ((("temporary SSH key", "server", "boot"), "running"), (("ssh",), "ssh"),
                      (("cloud-init",), "cloud_init")):
        elapsed += sum(durations[step] for step in done)
        seconds[key] = round(elapsed, 2)
    seconds["total"] = round(time.monotonic() - t0, 2)
    return {"server_ip": job.ip, "seconds": seconds}
