"""``list``: the agent servers and snapshots imagekit manages."""

from __future__ import annotations

from typing import Any

from ..cloud import api
from ..cloud.servers import address, private_address
from ..target import Target


def list_managed(target: Target) -> dict[str, Any]:
    client = api.connect(target)
    servers = sorted(client.servers.get_all(label_selector=api.selector(role="agent")), key=lambda s: s.name or "")
    snaps = client.images.get_all(type=["snapshot"], label_selector=api.selector(), sort=["created:desc"])
    return {
        "agents": [{"agent_id": (s.labels or {}).get("agent-id"), "server_id": s.id, "name": s.name,
                    "status": s.status, "ipv4": address(s), "private_ip": private_address(s),
                    "mode": (s.labels or {}).get("mode"), "profile": (s.labels or {}).get("profile"),
                    "created": api.known(s.created, f"server {s.id}'s creation time").isoformat()} for s in servers],
        "snapshots": [{"snapshot_id": i.id, "description": i.description, "profile": (i.labels or {}).get("profile"),
                       "architecture": i.architecture,
                       "build_id": (i.labels or {}).get("build-id"), "size_gb": i.image_size,
                       "created": api.known(i.created, f"snapshot {i.id}'s creation time").isoformat()}
                      for i in snaps],
    }
