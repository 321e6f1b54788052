"""A server round trip: key, server with user data, SSH in, cloud-init ran it, delete everything.

The quickest proof that a cloud (Hetzner or the local one) and this host work together. It is
the shared steps of every command, so it also proves them; everything is labelled and deleted
on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from .cloud import api, lookups
from .errors import HostError
from .host import probe
from .pipeline import run_steps
from .steps.job import ServerJob
from .steps.key import TemporaryKey
from .steps.ready import WaitCloudInit, WaitSSH
from .steps.server import CreateServer
from .target import Target

MARKER = "/root/imagekit-roundtrip"


@dataclass
class RoundTrip(ServerJob):
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))


class UserDataRan:
    name = "user data ran"

    def run(self, s: RoundTrip) -> None:
        code, out = probe.sh(s.conn, f"cat {MARKER}")
        if code != 0 or s.run_id not in out:
            raise HostError(f"cloud-init did not run the user data on server {s.server.id}: {out[-500:]}")

    def cleanup(self, s: RoundTrip) -> None:
        pass


def roundtrip(target: Target, *, server_type: str = "cx23", image: str = "debian-12",
              location: str | None = None, progress=print) -> dict:
    client = api.connect(target)
    stype = lookups.server_type(client, server_type, progress)
    job = RoundTrip(client=client, progress=progress, resource_name="", labels=api.labels(role="roundtrip"),
                    timeout=300, server_type=stype, locations=lookups.locations(client, location),
                    image=lookups.base_image(client, image, stype.architecture))
    job.resource_name = f"imagekit-roundtrip-{job.run_id}"
    job.user_data = f"#cloud-config\nruncmd:\n  - [sh, -c, 'echo {job.run_id} > {MARKER}']\n"
    t0 = time.monotonic()
    durations = run_steps([TemporaryKey(), CreateServer(), WaitSSH(), WaitCloudInit(), UserDataRan()], job, progress)
    seconds, elapsed = {}, 0.0
    for step, key in (("server", "running"), ("ssh", "ssh"), ("cloud-init", "cloud_init")):
        elapsed += durations[step] + (durations["temporary SSH key"] if step == "server" else 0)
        seconds[key] = round(elapsed, 2)
    seconds["total"] = round(time.monotonic() - t0, 2)
    return {"server_ip": job.ip, "seconds": seconds}
