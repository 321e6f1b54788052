"""``gc``: sweep what interrupted runs left behind, by label and age: builder servers (builds and
verifications) and the temporary keys of builds and provisioning runs. Agent servers are
deprovisioned, never swept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ..cloud import api
from ..errors import InputError
from ..steps.server import delete_many
from ..target import Target

ROLES = {"builder": ("builder",), "provision": ("provision",), "all": ("builder", "provision")}


def collect_garbage(target: Target, older_than_minutes: float, progress, role: str = "all") -> dict:
    """``role``: ``builder`` (builds' and verifications' servers and keys), ``provision`` (provisioning
    runs' keys) or ``all``."""
    if role not in ROLES:
        raise InputError(f"--role {role!r}: choose one of {', '.join(ROLES)}")
    roles = ROLES[role]
    client = api.connect(target)
    cutoff = datetime.now(timezone.utc) - timedelta(minutes=older_than_minutes)

    def old(resource) -> bool:
        created = resource.created
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        return created <= cutoff

    servers = [s for s in client.servers.get_all(label_selector=api.selector(role="builder")) if old(s)] \
        if "builder" in roles else []
    keys = [k for k in client.ssh_keys.get_all(label_selector=f"{api.selector()},role in ({','.join(roles)})")
            if old(k)]
    for server in servers:
        progress(f"deleting builder server {server.id} ({server.name}, created {server.created})")
    delete_many(client, servers)
    for key in keys:
        progress(f"deleting temporary key {key.id} ({key.name})")
        client.ssh_keys.delete(key)
    return {"servers": [s.id for s in servers], "ssh_keys": [k.id for k in keys]}
