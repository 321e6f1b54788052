"""``deprovision``: delete agents' servers and their Tailscale devices; a server with at least ``--recycle-min``
minutes left of its paid hour goes back into the warm pool instead while the pool is below its size
(pool/recycle.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hcloud.servers import BoundServer

from .. import agentid, tailnet
from ..cloud import api
from ..errors import CloudError, InputError
from ..pool import recycle
from ..provision import spread
from ..target import Target


def deprovision(target: Target, agent_ids: list[str], selector: str | None, progress: Callable[[str], None],
                recycle_min: int = 0) -> dict[str, Any]:
    """Delete (or recycle) the agents' servers and delete their Tailscale devices; agents without a server are
    reported, not errors."""
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
    recycled, deleted = recycle.retire(client, list(servers.values()), recycle_min, progress)
    groups = spread.drop_empty(client, spread.groups_of(servers.values()), progress)
    devices = tailnet.remove_devices(target, list(servers.values()), progress)
    return {"deleted": [_row(s) for s in deleted], "recycled": [_row(s) for s in recycled],
            "tailscale_devices_deleted": devices,
            "placement_groups_deleted": groups}


def _row(server: BoundServer) -> dict[str, Any]:
    return {"server_id": server.id, "name": server.name, "agent_id": (server.labels or {}).get("agent-id")}
