"""provision's ``--ssh-from``: once the agents are ready, the source set's firewall takes the profile's place on
their servers, and stays only if imagekit still reaches them over SSH (steps.sshfrom)."""

from __future__ import annotations

from ..cloud import api
from ..steps import sshfrom
from .state import Run


class NarrowSSH:
    name = "narrow ssh"

    def run(self, r: Run) -> None:
        sources = r.plan.options.ssh_from
        ids = [a["server_id"] for a in r.agents if a["status"] in ("ready", "existing") and a["server_id"]]
        if not sources or not ids:
            return
        servers = [api.known(r.client.servers.get_by_id(i), f"server {i}") for i in ids]
        sshfrom.narrow(r.client, r.profile, sources, servers, r.progress)
