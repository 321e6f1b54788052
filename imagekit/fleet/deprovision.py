"""``deprovision``: delete agents' servers and their Tailscale devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hcloud.servers import BoundServer

from .. import agentid, tailnet
from ..cloud import api
from ..cloud.servers import delete_many
from ..errors import CloudError, InputError
from ..provision import spread
from ..target import Target


def deprovision(target: Target, agent_ids: list[str], selector: str | None, progress: Callable[[str], None]
                ) -> dict[str, Any]:
    """Delete the agents' servers and their Tailscale devices; agents without a server are reported, not errors."""
    if not agent_ids and not selector:
        raise InputError("say which agents: --agent-id ID (repeatable, or comma-separated) or --selector LABELS")
    names = [agentid.server_name(agent) for agent in agent_ids]
    client = api.connect(target)
    servers: dict[int | None, BoundServer] = {}
    for name in names:
        found = client.servers.get_all(label_selector=api.selector(role="agent", **{"agent-id": name}))
        if not found:
            progress(f"[{name}] no server: nothing to delete")
        servers.update({s.id: s for s in found})
    if selector:
        servers.update({s.id: s for s in client.servers.get_all(
            label_selector=f"{api.selector(role='agent')},{selector}")})
    protected = [s for s in servers.values() if api.known(s.protection, f"server {s.id}'s protection").get("delete")]
    if protected:
        s = protected[0]
        raise CloudError(f"server {s.id} ({s.name}) is protected against deletion: lift it with "
                         f"`hcloud server disable-protection {s.id} delete` first")
    for server in servers.values():
        progress(f"[{server.name}] deleting server {server.id}")
    delete_many(client, list(servers.values()))
    groups = spread.drop_empty(client, spread.groups_of(servers.values()), progress)
    devices = tailnet.remove_devices(target, list(servers.values()), progress)
    return {"deleted": [{"server_id": s.id, "name": s.name, "agent_id": (s.labels or {}).get("agent-id")}
                        for s in servers.values()], "tailscale_devices_deleted": devices,
            "placement_groups_deleted": groups}

