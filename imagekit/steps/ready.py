"""Waiting for a new server: SSH with our key, then cloud-init done (an error in it fails the run)."""

from __future__ import annotations

import time

from ..errors import HostError
from ..host import probe, ssh


class WaitSSH:
    name = "ssh"

    def run(self, s) -> None:
        s.conn = ssh.wait_for_ssh(s.ip, s.keypair, deadline=s.deadline, check=lambda: s.check(f"SSH to {s.ip}"))
        s.event("ssh")

    def cleanup(self, s) -> None:
        if s.conn is not None:
            s.conn.close()
            s.conn = None


class WaitCloudInit:
    name = "cloud-init"

    def run(self, s) -> None:
        while (status := probe.cloud_init(s.conn)) not in ("done", "error", "disabled"):
            s.check("cloud-init")
            time.sleep(0.3)
        if status != "done":
            raise HostError(f"cloud-init finished with an error on {s.ip}:\n{probe.cloud_init_failure(s.conn)}")
        s.event("cloud-init done")

    def cleanup(self, s) -> None:
        pass
