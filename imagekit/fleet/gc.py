"""``gc``: sweep what interrupted runs left behind, by label and age: builder servers (builds and
verifications), the temporary keys of builds and provisioning runs, half-made agent servers whose
provisioning run died (with their Tailscale devices), one-shot jobs' servers and keys past their
deadline (a killed ``run``, or a host kept with --keep-on-failure), and pool hosts a killed ``pool fill`` left
half-made. Ready agents are deprovisioned,
never swept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from .. import tailnet
from ..cloud import api
from ..cloud.servers import delete_many
from ..errors import InputError
from ..jobs.job import JOB_DEADLINE
from ..pool import members
from ..provision import halfmade
from ..target import Target

ROLES = {"builder": ("builder",), "provision": ("provision",), "job": ("job",), "pool": ("pool",),
         "all": ("builder", "provision", "job", "pool")}


def collect_garbage(target: Target, older_than_minutes: float, progress: Callable[[str], None], role: str = "all"
                    ) -> dict[str, Any]:
    """``role``: ``builder`` (builds' and verifications' servers and keys), ``provision`` (provisioning
    runs' keys and abandoned half-made agents), ``job`` (jobs' servers and keys past their deadline) or
    ``all``."""
    if role not in ROLES:
        raise InputError(f"--role {role!r}: choose one of {', '.join(ROLES)}")
    roles = ROLES[role]
    client = api.connect(target)
    cutoff = datetime.now(timezone.utc) - timedelta(minutes=older_than_minutes)

    def old(resource: BoundServer | BoundSSHKey) -> bool:
        created = resource.created
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        return api.known(created, f"{resource.id}'s creation time") <= cutoff

    def servers(selector: str) -> list[BoundServer]:
        return [s for s in client.servers.get_all(label_selector=selector) if old(s) and s.status != "deleting"]

    builders = servers(api.selector(role="builder")) if "builder" in roles else []
    agents = [s for s in servers(f"{api.selector(role='agent')},{halfmade.LABEL}") if halfmade.abandoned(s)] \
        if "provision" in roles else []
    jobs = [s for s in servers(f"{api.selector(role='job')}") if JOB_DEADLINE.passed(s)] if "job" in roles else []
    pool = [s for s in servers(f"{api.selector(role=members.ROLE)},{members.FILLING.key}")
            if members.FILLING.passed(s)] if "pool" in roles else []
    keys = [k for k in client.ssh_keys.get_all(label_selector=f"{api.selector()},role in ({','.join(roles)})")
            if old(k) and (JOB_DEADLINE.of(k) is None or JOB_DEADLINE.passed(k))]  # a running job keeps its key
    for server in builders:
        progress(f"deleting builder server {server.id} ({server.name}, created {server.created})")
    for server in agents:
        progress(f"deleting half-made agent server {server.id} ({server.name}): {halfmade.died(server)}")
    for server in jobs:
        progress(f"deleting job server {server.id} ({server.name}): past its deadline, its run is over")
    for server in pool:
        progress(f"deleting pool host {server.id} ({server.name}): the fill that made it died before it was ready")
    delete_many(client, builders + agents + jobs + pool)
    for key in keys:
        progress(f"deleting temporary key {key.id} ({key.name})")
        client.ssh_keys.delete(key)
    devices = tailnet.remove_devices(target, agents, progress)  # last: it may need Tailscale's API
    return {"servers": [s.id for s in builders], "agent_servers": [s.id for s in agents],
            "job_servers": [s.id for s in jobs], "pool_servers": [s.id for s in pool],
            "ssh_keys": [k.id for k in keys], "tailscale_devices_deleted": devices}
