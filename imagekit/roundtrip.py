"""A server round trip: key, server with user data, SSH in, cloud-init ran, delete everything.

The quickest proof that a cloud (Hetzner or the local one) and this host work together.
Every resource is labelled and deleted on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import contextlib
import secrets
import time

from hcloud.images import Image
from hcloud.server_types import ServerType

from . import cloudapi, ssh
from .keys import new_ed25519
from .target import Target

LABELS = cloudapi.labels(role="roundtrip")
MARKER = "/root/imagekit-roundtrip"


def roundtrip(target: Target, *, server_type: str = "cx23", image: str = "debian-12",
              location: str | None = None, progress=print) -> dict:
    client = cloudapi.connect(target)
    run_id = secrets.token_hex(4)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        key = new_ed25519(f"imagekit-roundtrip-{run_id}")
        ssh_key = client.ssh_keys.create(name=f"imagekit-roundtrip-{run_id}", public_key=key.public_openssh,
                                         labels=LABELS)
        cleanup.callback(client.ssh_keys.delete, ssh_key)
        user_data = f"#cloud-config\nruncmd:\n  - [sh, -c, 'echo {run_id} > {MARKER}']\n"
        created = client.servers.create(
            name=f"imagekit-roundtrip-{run_id}", server_type=ServerType(name=server_type),
            image=Image(name=image), ssh_keys=[ssh_key], user_data=user_data, labels=LABELS,
            location=client.locations.get_by_name(location) if location else None)
        server = created.server
        cleanup.callback(lambda: client.servers.delete(server).wait_until_finished(120))
        progress(f"server {server.id} created; waiting for it to run")
        created.action.wait_until_finished(300)
        server.reload()
        ip = server.public_net.ipv4.ip
        timings["running"] = time.monotonic() - t0
        conn = ssh.wait_for_ssh(ip, key, deadline=time.monotonic() + 300)
        cleanup.callback(conn.close)
        timings["ssh"] = time.monotonic() - t0
        progress(f"SSH to root@{ip} works after {timings['ssh']:.1f} s; waiting for cloud-init")
        code, out, err = ssh.run(conn, f"cloud-init status --wait >/dev/null; cloud-init status; cat {MARKER}")
        if code != 0 or run_id not in out:
            raise RuntimeError(f"cloud-init did not run the user data on server {server.id}: {out} {err}")
        timings["cloud_init"] = time.monotonic() - t0
        progress(f"cloud-init ran the user data after {timings['cloud_init']:.1f} s; deleting")
    timings["total"] = time.monotonic() - t0
    return {"server_ip": ip, "seconds": {k: round(v, 2) for k, v in timings.items()}}
