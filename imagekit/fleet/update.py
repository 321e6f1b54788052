"""``update``: new agent code and/or secrets to running agents over SSH, batch by batch. On each host the
agent is stopped first (it owns its code directory and could plant links there for root to follow while its
code is copied or replaced), its previous code and secrets are kept aside, the new ones put in place (the code
through the host's own ``imagekit-configure-agent``, as at provisioning: unpacked into a fresh directory, moved
into place whole), the agent restarted and waited for; an agent that does not come up is stopped again and gets
its previous code and secrets back, and the update stops after that batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from secrets import token_hex
from typing import Any, TypedDict

import paramiko
from hcloud.servers import BoundServer

from .. import agentconf, bundledigest, profiles, secretfile
from .. import events as live
from ..bundledigest import CODE_LABEL
from ..cloud import api
from ..cloud.servers import address
from ..errors import HostError, InputError
from ..host import hostkey, probe, ssh
from ..host.keys import KeyPair
from ..provision import halfmade
from ..provision.agent import AGENT_STABLE, AGENT_START_GRACE
from ..steps.operator import operator_key
from ..target import Target
from .selection import agent_servers

SSH_TIMEOUT = 15


class Updated(TypedDict):
    """An agent's row in ``update``'s result."""

    agent_id: str | None
    server_id: int | None
    name: str | None
    status: str  # updated | rolled back | failed | not updated
    seconds: float | None
    error: str | None


def _restart(p: profiles.Profile) -> str:
    return f"systemctl reset-failed {p.service} && systemctl restart {p.service}"  # NRestarts from 0


def _keep_previous(p: profiles.Profile) -> str:
    """Stop the agent, then copy its code and secrets aside: nothing of it runs while root reads its directory."""
    return (f"systemctl stop {p.service} && rm -rf {p.code_dir}.previous && cp -a {p.code_dir} {p.code_dir}.previous "
            f"&& if [ -e {p.secrets_file} ]; then cp -a {p.secrets_file} {p.secrets_file}.previous; "
            f"else rm -f {p.secrets_file}.previous; fi")


def _restore_previous(p: profiles.Profile) -> str:
    """Stop the new agent, then move the previous code back whole (nothing is copied into a directory it owns)."""
    return (f"systemctl stop {p.service} && rm -rf {p.code_dir} && mv -T {p.code_dir}.previous {p.code_dir} && "
            f"if [ -e {p.secrets_file}.previous ]; then mv {p.secrets_file}.previous {p.secrets_file}; "
            f"else rm -f {p.secrets_file}; fi && {_restart(p)}")


def _drop_previous(p: profiles.Profile) -> str:
    return f"rm -rf {p.code_dir}.previous {p.secrets_file}.previous"


def update_fleet(target: Target, agent_ids: list[str], selector: str | None, bundle_path: Path | None,
                 secrets_file: Path | None, batch: int, progress: Callable[[str], None], events: str | None = None
                 ) -> dict[str, Any]:
    if bundle_path is None and secrets_file is None:
        raise InputError("nothing to update: pass --agent-bundle DIR|FILE.tar.gz and/or --secrets-file FILE")
    if batch < 1:
        raise InputError(f"--batch {batch}: give at least 1")
    secrets = secretfile.load(secrets_file) if secrets_file is not None else None
    key = operator_key(required=True, why="update reaches the agents")
    client = api.connect(target)
    servers = agent_servers(client, agent_ids, selector)
    if not servers:
        raise InputError("no agent matches: check --agent-id / --selector with `invoke list`")
    kinds = {name: profiles.load(name) for name in {(s.labels or {}).get("profile", "agent") for s in servers}}
    bundles = {name: agentconf.bundle(bundle_path, p) if bundle_path is not None else None for name, p in kinds.items()}
    results: list[Updated] = []
    stopped = False
    batches = [servers[i:i + batch] for i in range(0, len(servers), batch)]
    run_id = time.strftime("%Y%m%d%H%M%S") + "-" + token_hex(3)
    with live.stream(events, run_id, command="update", agents=[s.name for s in servers]) as ev:
        for number, group in enumerate(batches, 1):
            if stopped:
                results += [_row(s, "not updated", "an earlier batch failed: the update stopped") for s in group]
                continue
            names = ", ".join(str(s.name) for s in group)
            progress(f"batch {number}/{len(batches)}: {names}")
            ev.emit("batch started", detail=f"{number}/{len(batches)}: {names}")
            with ThreadPoolExecutor(max_workers=len(group)) as pool:
                done = list(pool.map(lambda s: _update_one(s, kinds[_kind(s)], key, bundles[_kind(s)], secrets,
                                                           progress), group))
            for row in done:
                ev.emit(row["status"], agent=row["agent_id"], detail=row["error"])
            results += done
            stopped = any(r["status"] != "updated" for r in done)
        ev.outcome = "failed: the update stopped" if stopped else f"succeeded: {len(results)} agent(s) updated"
    return {"run_id": run_id, "agents": results, "stopped": stopped}


def _row(server: BoundServer, status: str, error: str | None = None, seconds: float | None = None) -> Updated:
    return {"agent_id": (server.labels or {}).get("agent-id"), "server_id": server.id, "name": server.name,
            "status": status, "seconds": seconds, "error": error}


def _kind(server: BoundServer) -> str:
    return (server.labels or {}).get("profile", "agent")


def _update_one(server: BoundServer, p: profiles.Profile, key: KeyPair, bundle: bytes | None,
                secrets: secretfile.Secrets | None, progress: Callable[[str], None]) -> Updated:
    """One host: updated, rolled back (its agent did not come up with the new code), or failed."""
    t0 = time.monotonic()
    if server.status != "running" or halfmade.deadline(server) is not None:
        return _row(server, "failed", f"not a ready, running agent (server {server.status}): provision it first")
    ip = address(server)
    if ip is None:  # SSH to no address would reach this machine itself
        return _row(server, "failed", f"server {server.id} has no address to reach it on")
    try:
        conn = ssh.connect(ip, key, pin=hostkey.pin(server), timeout=SSH_TIMEOUT, connect_timeout=SSH_TIMEOUT)
    except (hostkey.HostKeyMismatch, hostkey.Unpinned) as exc:  # not (known to be) its host: nothing was sent
        return _row(server, "failed", str(exc))
    except Exception as exc:  # unreachable: nothing was changed on it
        return _row(server, "failed", f"SSH to {ip} failed: {exc or type(exc).__name__}")
    try:
        try:
            _sh(conn, _keep_previous(p), "stopping the agent and keeping its code aside")
        except HostError as exc:  # nothing was changed: the agent runs its code again
            code, out = probe.sh(conn, _restart(p))
            return _row(server, "failed", f"{exc}; " + ("the agent was started again" if code == 0 else
                                                        f"starting the agent again failed too: {out[-300:]}"))
        try:
            if secrets is not None:
                secretfile.install(conn, p.secrets_file, secrets, owner=p.user)
            if bundle is not None:
                _sh(conn, agentconf.STAGE_AND_CONFIGURE, "installing the new code", stdin=bundle)
            else:
                _sh(conn, _restart(p), "restarting the agent")
            probe.wait_running(conn, p.service, grace=AGENT_START_GRACE, stable=AGENT_STABLE)
        except HostError as exc:
            progress(f"[{server.name}] the agent did not come up: restoring its previous code")
            try:
                _sh(conn, _restore_previous(p), "restoring the previous code")
                probe.wait_running(conn, p.service, grace=AGENT_START_GRACE, stable=AGENT_STABLE)
            except HostError as again:
                return _row(server, "failed", f"{exc}; restoring the previous code failed too: {again}")
            return _row(server, "rolled back", str(exc), round(time.monotonic() - t0, 2))
        _sh(conn, _drop_previous(p), "dropping the previous code")
        if bundle is not None:  # status shows which code each agent runs
            server.update(labels={**(server.labels or {}), CODE_LABEL: bundledigest.of_archive(bundle)})
        progress(f"[{server.name}] updated ({time.monotonic() - t0:.1f} s)")
        return _row(server, "updated", None, round(time.monotonic() - t0, 2))
    except HostError as exc:
        return _row(server, "failed", str(exc))
    finally:
        conn.close()


def _sh(conn: paramiko.SSHClient, command: str, what: str, stdin: bytes | None = None) -> None:
    ssh.must(conn, command, what, stdin=stdin, tail=800)
