"""The fleet's lifecycle beyond provisioning: list, deprovision, prune old snapshots.

Everything is found by imagekit's labels, never by name alone, so servers and snapshots
that imagekit did not make are never touched.
"""

from __future__ import annotations

from collections import defaultdict

from . import agentid, cloudapi, tailnet
from .target import Target


def list_managed(target: Target) -> dict:
    client = cloudapi.connect(target)
    servers = sorted(client.servers.get_all(label_selector=cloudapi.selector(role="agent")), key=lambda s: s.name)
    snaps = client.images.get_all(type=["snapshot"], label_selector=cloudapi.selector(), sort=["created:desc"])
    return {
        "agents": [{"agent_id": (s.labels or {}).get("agent-id"), "server_id": s.id, "name": s.name,
                    "status": s.status, "ipv4": s.public_net.ipv4.ip if s.public_net and s.public_net.ipv4 else None,
                    "mode": (s.labels or {}).get("mode"), "profile": (s.labels or {}).get("profile"),
                    "created": s.created.isoformat()} for s in servers],
        "snapshots": [{"snapshot_id": i.id, "description": i.description, "profile": (i.labels or {}).get("profile"),
                       "build_id": (i.labels or {}).get("build-id"), "size_gb": i.image_size,
                       "created": i.created.isoformat()} for i in snaps],
    }


def deprovision(target: Target, agent_ids: list[str], selector: str | None, progress) -> dict:
    """Delete the agents' servers and their Tailscale devices; agents without a server are reported, not errors."""
    if not agent_ids and not selector:
        raise ValueError("say which agents: --agent-id ID (repeatable, or comma-separated) or --selector LABELS")
    client = cloudapi.connect(target)
    servers = {}
    for agent in agent_ids:
        sel = cloudapi.selector(role="agent", **{"agent-id": agentid.server_name(agent)})
        found = client.servers.get_all(label_selector=sel)
        if not found:
            progress(f"[{agentid.server_name(agent)}] no server: nothing to delete")
        servers.update({s.id: s for s in found})
    if selector:
        servers.update({s.id: s for s in client.servers.get_all(
            label_selector=f"{cloudapi.selector(role='agent')},{selector}")})
    pending = []
    for server in servers.values():
        if server.protection.get("delete"):
            raise cloudapi.CloudError(f"server {server.id} ({server.name}) is protected against deletion: "
                                      f"lift it with `hcloud server disable-protection {server.id} delete` first")
        pending.append((server, client.servers.delete(server)))
        progress(f"[{server.name}] deleting server {server.id}")
    for server, action in pending:
        cloudapi.wait(action, 300, f"deleting server {server.id}")
    devices = _delete_devices(target, [s.name for s in servers.values()], progress)
    return {"deleted": [{"server_id": s.id, "name": s.name, "agent_id": (s.labels or {}).get("agent-id")}
                        for s in servers.values()], "tailscale_devices_deleted": devices}


def _delete_devices(target: Target, names: list[str], progress) -> list[str]:
    if not names:
        return []
    settings = tailnet.settings(target, required=False)
    if settings is None:
        progress("Tailscale credentials are not set: the agents' nodes were not removed from the tailnet "
                 "(they are ephemeral and go away on their own once offline)")
        return []
    api = tailnet.Tailnet(settings)
    deleted = []
    for device in api.devices():
        if device.get("hostname") in names:
            api.delete_device(device["id"])
            deleted.append(device["id"])
            progress(f"[{device['hostname']}] Tailscale device {device.get('name')} removed ({settings.what})")
    return deleted


def prune_snapshots(target: Target, keep: int, profile: str | None, progress, dry_run: bool = False) -> dict:
    """Keep the newest ``keep`` snapshots of each profile (or of ``profile``); delete the older ones."""
    if keep < 1:
        raise ValueError(f"--keep {keep}: keep at least 1 snapshot per profile (delete the last one by hand)")
    client = cloudapi.connect(target)
    sel = cloudapi.selector(**({"profile": profile} if profile else {}))
    by_profile = defaultdict(list)
    for image in client.images.get_all(type=["snapshot"], label_selector=sel, sort=["created:desc"]):
        by_profile[(image.labels or {}).get("profile", "")].append(image)
    deleted = []
    for name, images in sorted(by_profile.items()):
        for image in images[keep:]:
            progress(f"{'would delete' if dry_run else 'deleting'} snapshot {image.id} ({image.description}, "
                     f"profile {name}, created {image.created:%Y-%m-%d %H:%M})")
            if not dry_run:
                image.delete()
            deleted.append(image.id)
    return {"deleted": deleted, "kept": {name: [i.id for i in images[:keep]] for name, images in by_profile.items()},
            "dry_run": dry_run}
