"""``status``: each agent's health, read at once for the whole fleet. The cloud API is asked once for the
agents' servers and once for the snapshots, the tailnet once for its devices; then every host is asked,
concurrently, over SSH with the operator's key (SSH_PRIVATE_KEY_PATH), for its service and when it was
provisioned. An agent is healthy when its server runs, SSH answers, its profile's service is active and its
Tailscale node is online (when it was enrolled)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from .. import profiles, tailnet
from ..cloud import api
from ..cloud.servers import address
from ..errors import ImagekitError
from ..host import probe, ssh
from ..provision import halfmade
from ..target import Target
from .selection import agent_servers, operator_key

SSH_TIMEOUT = 10


def fleet_status(target: Target, agent_ids: list[str], selector: str | None, progress) -> dict:
    client = api.connect(target)
    servers = agent_servers(client, agent_ids, selector)
    newest = _newest_snapshots(client)
    tn, devices = _tailnet(target, progress) if servers else (None, None)
    key = operator_key(required=False, why="")
    if key is None and servers:
        progress("SSH_PRIVATE_KEY_PATH is not set: the agents' services are not checked (set it to the private half "
                 "of HETZNER_SSH_KEY_ID)")
    with ThreadPoolExecutor(max_workers=min(10, max(1, len(servers)))) as pool:
        agents = list(pool.map(lambda s: _agent(s, key, newest, tn, devices), servers))
    return {"agents": agents}


def _newest_snapshots(client) -> dict[tuple[str, str], int]:
    """(profile, architecture) → the newest available snapshot's id, from one listing."""
    newest: dict[tuple[str, str], int] = {}
    for image in client.images.get_all(type=["snapshot"], label_selector=api.selector(), sort=["created:desc"]):
        profile = (image.labels or {}).get("profile")
        if image.status == "available" and profile:
            newest.setdefault((profile, image.architecture), image.id)
    return newest


def _tailnet(target: Target, progress) -> tuple[tailnet.Tailnet | None, list[dict] | None]:
    """The tailnet's client and its devices (one request); (None, None) when it cannot be read."""
    try:
        creds = tailnet.credentials(target, required=False)
        if creds is None:
            progress("no Tailscale credentials: Tailscale is not checked")
            return None, None
        tn = tailnet.Tailnet(creds)
        return tn, tn.devices()
    except (ImagekitError, OSError) as exc:
        progress(f"the tailnet could not be read ({exc}): Tailscale is not checked")
        return None, None


def _agent(server, key, newest: dict, tn: tailnet.Tailnet | None, devices: list[dict] | None) -> dict:
    labels = server.labels or {}
    profile = labels.get("profile", "agent")
    snapshot_id = server.image.id if server.image is not None and labels.get("mode") == "snapshot" else None
    latest = newest.get((profile, server.server_type.architecture))
    ip = address(server)
    row = {"agent_id": labels.get("agent-id"), "server_id": server.id, "name": server.name, "ipv4": ip,
           "status": server.status, "ssh": None, "service": None, "restarts": None, "uptime_seconds": None,
           "tailscale_online": None, "snapshot_id": snapshot_id, "newest_snapshot_id": latest,
           "drift": latest is not None and snapshot_id != latest, "provisioned_at": server.created.isoformat(),
           "problems": []}
    problems = row["problems"]
    if server.status != "running":
        problems.append(f"server is {server.status}")
    if halfmade.deadline(server) is not None:
        problems.append("not ready: its provisioning run has not finished (or died)")
    if halfmade.REBUILDING.of(server) is not None:
        problems.append("being rebuilt: its in-place roll has not finished (or died)")
    if devices is not None and labels.get("tailscale") != "no":
        found = tn.devices_of(tailnet.hostname_of(server), server.created, devices)
        row["tailscale_online"] = any(d.get("connectedToControl", True) for d in found)
        if not row["tailscale_online"]:
            problems.append("no Tailscale node online" if found else "no Tailscale node enrolled")
    if key is not None and ip and server.status == "running":
        _host_facts(row, ip, key, profiles.load(profile))
    row["healthy"] = not problems
    return row


def _host_facts(row: dict, ip: str, key, p: profiles.Profile) -> None:
    try:
        conn = ssh.connect(ip, key, timeout=SSH_TIMEOUT, connect_timeout=SSH_TIMEOUT)
    except Exception as exc:  # any way SSH fails is a fact about this agent, not an error of the run
        row["ssh"] = False
        row["problems"].append(f"SSH to {ip} failed: {exc or type(exc).__name__}")
        return
    try:
        row["ssh"] = True
        unit = probe.unit(conn, p.service)
        row.update(service=unit.active, restarts=unit.restarts, uptime_seconds=round(unit.age, 1))
        if unit.active != "active":
            row["problems"].append(f"{p.service} is {unit.active}")
        code, out = probe.sh(conn, f"cat {p.provisioned_at}")
        if code == 0:
            try:
                row["provisioned_at"] = json.loads(out).get("provisioned_at") or row["provisioned_at"]
            except ValueError:
                pass
    finally:
        conn.close()
