"""``status``: each agent's health, read at once for the whole fleet. The cloud API is asked once for the
agents' servers and once for the snapshots, the tailnet once for its devices (a view a watch reuses between API
refreshes); then every host is asked, concurrently, over SSH with the operator's key (SSH_PRIVATE_KEY_PATH), for
its service and when it was provisioned.

An agent is healthy when its server runs, SSH answers with the host key pinned in its ``host-key`` label, its
profile's service is active and its Tailscale node is online (when it was enrolled); unhealthy when a check found
a problem (another host key answering is one); and *unchecked* (``healthy: null``) when no check found a problem
but one could not be made (no key, no pinned host key, SSH refused or timed out, the tailnet unreadable): what
was not checked, and why, is in ``unchecked``. ``--api-only`` leaves SSH out deliberately."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paramiko
from hcloud import Client
from hcloud.servers import BoundServer

from .. import agentid, profiles, tailnet, ttl
from ..bundledigest import CODE_LABEL
from ..cloud import api, userlabels
from ..cloud.api import known
from ..cloud.servers import address, architecture, private_address, type_of
from ..errors import ImagekitError
from ..host import hostkey, probe, ssh
from ..host.keys import KeyPair
from ..pool.members import cost
from ..provision import halfmade
from ..steps.operator import operator_key
from ..tailnet import Device
from ..target import Target
from .health import AgentHealth
from .selection import agent_servers

SSH_TIMEOUT = 10
PARALLEL = 10  # hosts asked at once
NO_KEY = "SSH_PRIVATE_KEY_PATH is not set: set it to the private half of HETZNER_SSH_KEY_ID, or pass --api-only"


@dataclass
class FleetView:
    """What the cloud API and the tailnet say of the fleet, read at once."""

    servers: list[BoundServer]
    newest: dict[tuple[str, str], int | None]  # (profile, architecture) -> the newest available snapshot's id
    tailnet: tailnet.Tailnet | None = None
    devices: list[Device] | None = None
    tailnet_gap: str | None = None  # why Tailscale cannot be checked (None: it can, or nobody asked)
    missing: list[str] = field(default_factory=list)  # agent ids asked for that have no server
    profiles: dict[str, profiles.Profile] = field(default_factory=dict)  # the servers' profiles, read once
    read_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Reach:
    """How hosts are reached: the operator's key, or why not (``why_not`` None: deliberately not, --api-only)."""

    key: KeyPair | None
    why_not: str | None = None

    @staticmethod
    def of(api_only: bool) -> Reach:
        if api_only:
            return Reach(None)
        key = operator_key(required=False, why="")
        return Reach(key, None if key else NO_KEY)


def fleet_status(target: Target, agent_ids: list[str], selector: str | None, progress: Callable[[str], None], *,
                 api_only: bool = False, parallel: int = PARALLEL, metrics_file: Path | None = None) -> dict[str, Any]:
    reach = Reach.of(api_only)
    view = read_view(api.connect(target), target, agent_ids, selector, progress)
    if reach.why_not and view.servers:
        progress(f"the agents' services are not checked, so none counts as healthy: {reach.why_not}")
    agents = check(view, reach, parallel)
    if metrics_file is not None:
        from . import metrics

        metrics.write(metrics_file, agents)
    return {"agents": agents, "missing": view.missing, "api_only": api_only, "checked_at": now()}


def read_view(client: Client, target: Target, agent_ids: list[str], selector: str | None,
              progress: Callable[[str], None]) -> FleetView:
    """One listing of the agents' servers, one of the snapshots, one of the tailnet's devices."""
    servers = agent_servers(client, agent_ids, selector)
    found = {(s.labels or {}).get("agent-id") for s in servers}
    view = FleetView(servers, _newest_snapshots(client),
                     missing=[a for a in agent_ids if agentid.server_name(a) not in found],
                     profiles={name: profiles.load(name) for name in {_profile(s) for s in servers}})
    if any((s.labels or {}).get("tailscale") != "no" for s in servers):
        view.tailnet, view.devices, view.tailnet_gap = _tailnet(target)
        if view.tailnet_gap:
            progress(f"Tailscale is not checked: {view.tailnet_gap}")
    return view


def check(view: FleetView, reach: Reach, parallel: int = PARALLEL, only: set[int | None] | None = None,
          stop: threading.Event | None = None) -> list[AgentHealth]:
    """Each agent's row (of the servers in ``only``, by id, when given), its host asked over SSH when ``reach``
    has a key; at most ``parallel`` hosts at once. Once ``stop`` is set, the hosts not yet asked are left out."""
    servers = [s for s in view.servers if only is None or s.id in only]

    def one(server: BoundServer) -> AgentHealth | None:
        return None if stop is not None and stop.is_set() else _agent(server, view, reach)

    with ThreadPoolExecutor(max_workers=min(parallel, max(1, len(servers)))) as pool:
        return [row for row in pool.map(one, servers) if row is not None]


def verdict(result: dict[str, Any]) -> str | None:
    """What is wrong with the fleet, for the error line (and exit 1); None when every agent is healthy."""
    parts = []
    if result["missing"]:
        parts.append(f"no such agent: {', '.join(result['missing'])} (see `invoke list`)")
    agents = result["agents"]
    if bad := [a for a in agents if a["healthy"] is False]:
        parts.append(f"{len(bad)} of {len(agents)} agent(s) unhealthy: "
                     + "; ".join(f"{a['agent_id']}: {', '.join(a['problems'])}" for a in bad))
    if unknown := [a for a in agents if a["healthy"] is None]:
        parts.append(f"{len(unknown)} of {len(agents)} agent(s) unchecked: "
                     + "; ".join(f"{a['agent_id']}: {', '.join(a['unchecked'])}" for a in unknown))
    return "; ".join(parts) or None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _newest_snapshots(client: Client) -> dict[tuple[str, str], int | None]:
    """(profile, architecture) → the newest available snapshot's id, from one listing."""
    newest: dict[tuple[str, str], int | None] = {}
    for image in client.images.get_all(type=["snapshot"], label_selector=api.selector(), sort=["created:desc"]):
        profile = (image.labels or {}).get("profile")
        if image.status == "available" and profile:
            newest.setdefault((profile, known(image.architecture, f"snapshot {image.id}'s architecture")), image.id)
    return newest


def _tailnet(target: Target) -> tuple[tailnet.Tailnet | None, list[tailnet.Device] | None, str | None]:
    """The tailnet's client and its devices (one request), or why they cannot be had."""
    try:
        creds = tailnet.credentials(target, required=False)
        if creds is None:
            return None, None, "no Tailscale credentials (set TAILSCALE_OAUTH_CLIENT_ID and _SECRET)"
        tn = tailnet.Tailnet(creds)
        return tn, tn.devices(), None
    except (ImagekitError, OSError) as exc:
        return None, None, f"the tailnet could not be read ({exc})"


def _profile(server: BoundServer) -> str:
    return (server.labels or {}).get("profile", "agent")


def _agent(server: BoundServer, view: FleetView, reach: Reach) -> AgentHealth:
    labels = server.labels or {}
    profile = _profile(server)
    snapshot_id = server.image.id if server.image is not None and labels.get("mode") == "snapshot" else None
    latest = view.newest.get((profile, architecture(server)))
    ip = address(server)
    location = server.location.name if server.location else None
    created = known(server.created, f"server {server.id}'s creation time")
    row: AgentHealth = {
        "agent_id": labels.get("agent-id"), "server_id": server.id, "name": known(server.name, "the server's name"),
        "ipv4": ip, "private_ip": private_address(server), "status": server.status, "ssh": None, "service": None,
        "restarts": None, "uptime_seconds": None,
        "tailscale_online": None, "snapshot_id": snapshot_id, "newest_snapshot_id": latest,
        "drift": latest is not None and snapshot_id != latest, "code_digest": labels.get(CODE_LABEL),
        "provisioned_at": created.isoformat(),
        "server_type": type_of(server).name, "location": location,
        "hourly_cost_gross": cost([server])["hourly_gross"] if location else None, "expires_at": ttl.shown(server),
        "problems": [], "unchecked": [], "labels": userlabels.operator_labels(labels)}
    problems = row["problems"]
    if server.status != "running":
        problems.append(f"server is {server.status}")
    if halfmade.deadline(server) is not None:
        problems.append("not ready: its provisioning run has not finished (or died)")
    if halfmade.REBUILDING.of(server) is not None:
        problems.append("being rebuilt: its in-place roll has not finished (or died)")
    if labels.get("tailscale") != "no":
        if view.devices is not None:
            assert view.tailnet is not None, "a view's devices come with its tailnet"
            found = view.tailnet.devices_of(tailnet.hostname_of(server), created, view.devices)
            row["tailscale_online"] = any(d.get("connectedToControl", True) for d in found)
            if not row["tailscale_online"]:
                problems.append("no Tailscale node online" if found else "no Tailscale node enrolled")
        elif view.tailnet_gap:
            row["unchecked"].append(f"Tailscale: {view.tailnet_gap}")
    p = view.profiles.get(profile) or profiles.load(profile)
    if ip and server.status == "running":
        if reach.key is not None:
            _host_facts(row, server, ip, reach.key, p)
        elif reach.why_not:
            row["unchecked"].append(f"{p.service}: {reach.why_not}")
    row["healthy"] = False if problems else None if row["unchecked"] else True
    return row


def _host_facts(row: AgentHealth, server: BoundServer, ip: str, key: KeyPair, p: profiles.Profile) -> None:
    conn: paramiko.SSHClient | None = None
    try:
        conn = ssh.connect(ip, key, pin=hostkey.pin(server), timeout=SSH_TIMEOUT, connect_timeout=SSH_TIMEOUT)
        row["ssh"] = True
        unit = probe.unit(conn, p.service, timeout=SSH_TIMEOUT)
        row["service"], row["restarts"], row["uptime_seconds"] = unit.active, unit.restarts, round(unit.age, 1)
        if unit.active != "active":
            row["problems"].append(f"{p.service} is {unit.active}")
        code, out = probe.sh(conn, f"cat {p.provisioned_at}", timeout=SSH_TIMEOUT)
        if code == 0:
            try:
                row["provisioned_at"] = json.loads(out).get("provisioned_at") or row["provisioned_at"]
            except ValueError:
                pass
    except hostkey.HostKeyMismatch as exc:  # not its host: nothing of ours was sent; a finding, not a gap
        row["ssh"] = False
        row["problems"].append(str(exc))
    except hostkey.Unpinned as exc:
        row["unchecked"].append(f"{p.service}: {exc}")
    except Exception as exc:  # any way SSH fails is a fact about this agent, not an error of the run
        row["ssh"] = row["ssh"] or False
        row["unchecked"].append(f"{p.service}: SSH to {ip} failed ({exc or type(exc).__name__})")
    finally:
        if conn is not None:
            conn.close()
