"""Waiting for a new server: SSH with our key, then cloud-init done (an error in it fails the run)."""

from __future__ import annotations

from ..errors import HostError
from ..host import probe, ssh
from .job import HostJob


class WaitSSH:
    name = "ssh"

    def run(self, s: HostJob) -> None:
        assert s.keypair is not None, "WaitSSH follows the step that made the job's key"
        if s.ip is None:  # SSH to no address would reach this machine itself
            raise HostError(f"server {s.server.id if s.server else '?'} has no public address to reach it on")
        s.conn = ssh.wait_for_ssh(s.ip, s.keypair, pin=s.pin, deadline=s.deadline,
                                  check=lambda: s.check(f"SSH to {s.ip}"))
        s.event("ssh")

    def cleanup(self, s: HostJob) -> None:
        if s.conn is not None:
            s.conn.close()
            s.conn = None


FINISHED = ("done", "error", "disabled")
WAIT_ROUND = 2.0  # seconds the host waits for cloud-init per SSH command: how soon a timeout or ^C is seen


class WaitCloudInit:
    name = "cloud-init"

    def run(self, s: HostJob) -> None:
        assert s.conn is not None, "WaitCloudInit follows WaitSSH"
        while (status := probe.cloud_init(s.conn, wait=min(WAIT_ROUND, s.remaining()))) not in FINISHED:
            s.check("cloud-init")
        if status != "done":
            raise HostError(f"cloud-init finished with an error on {s.ip}:\n{probe.cloud_init_failure(s.conn)}")
        s.event("cloud-init done")
