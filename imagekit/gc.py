"""Sweep what interrupted runs left behind: builder servers and the temporary keys of builds and
provisioning runs, by label (agent servers are deprovisioned, never swept)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import cloudapi
from .target import Target


def collect_garbage(target: Target, older_than_minutes: float, progress) -> dict:
    client = cloudapi.connect(target)
    cutoff = datetime.now(timezone.utc) - timedelta(minutes=older_than_minutes)
    sel = cloudapi.selector(role="builder")
    key_sel = f"{cloudapi.selector()},role in (builder,provision)"

    def old(resource) -> bool:
        created = resource.created
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        return created <= cutoff

    servers = [s for s in client.servers.get_all(label_selector=sel) if old(s)]
    keys = [k for k in client.ssh_keys.get_all(label_selector=key_sel) if old(k)]
    actions = []
    for server in servers:
        progress(f"deleting builder server {server.id} ({server.name}, created {server.created})")
        actions.append((server, client.servers.delete(server)))
    for server, action in actions:
        cloudapi.wait(action, 300, f"deleting server {server.id}")
    for key in keys:
        progress(f"deleting temporary key {key.id} ({key.name})")
        client.ssh_keys.delete(key)
    return {"servers": [s.id for s in servers], "ssh_keys": [k.id for k in keys]}
