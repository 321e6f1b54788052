"""A provisioning run killed (SIGKILL, no cleanup can run) after its agent's server exists and before the
agent is ready leaves a half-made server carrying the run's lease. Until the lease ends the run might be
alive: gc spares the server and provision refuses it. After it, gc sweeps the server with its Tailscale
device, and provisioning the agent again replaces it and ends ready. Each test waits out a short lease
(IMAGEKIT_LEASE_INTERVAL=INTERVAL: 5 × INTERVAL seconds instead of five minutes). The logic against records:
tests/imagekit/unit/test_half_made_logic.py."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from operator_cli import agent_env, invoke, start

from imagekit import tailnet
from imagekit.provision import halfmade
from imagekit.target import Target
from localcloud import client as localcloud
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e
INTERVAL = 4  # seconds between the run's renewals: its lease reaches 20 s ahead
SHORT = {"IMAGEKIT_LEASE_INTERVAL": str(INTERVAL)}


def standin() -> tailnet.Tailnet:
    ep = localcloud.current()
    return tailnet.Tailnet(tailnet.credentials(Target(ep.endpoint, ep.token, local=True)))


def agent_servers(client, agent: str) -> list:
    return [s for s in client.servers.get_all(label_selector=f"managed-by=imagekit,role=agent,agent-id={agent}")
            if s.status != "deleting"]


def killed_before_ready(client, agent: str, env: dict):
    """Start provisioning ``agent``, SIGKILL it as soon as its server exists; the server it left."""
    proc = start("provision", "--agent-id", agent, env_extra=env)
    try:
        wait_for(lambda: agent_servers(client, agent), 120, 0.05, f"{agent}'s server")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    [server] = agent_servers(client, agent)
    assert halfmade.LABEL in server.labels  # not ready: its run's lease is still on
    return server


def its_devices(server) -> list[dict]:
    return standin().devices_of(server.name, server.created)


def past_its_lease(client, server) -> None:
    """Wait until the leases the killed run last renewed (its server's, its key's) have ended."""
    selector = f"run={server.labels['run']},{halfmade.LABEL}"
    leased = [*client.servers.get_all(label_selector=selector), *client.ssh_keys.get_all(label_selector=selector)]
    time.sleep(max(0.0, max(halfmade.deadline(r) for r in leased) + 1 - time.time()))


def test_gc_sweeps_the_server_a_killed_provisioning_left(fleet, operator):
    client = fleet
    _, sk = operator
    env = agent_env(sk, **SHORT)
    server = killed_before_ready(client, "torn-1", env)

    # While its lease lives the run might still be at work: gc spares its server, provision refuses it.
    early = invoke("gc", "--role", "provision", "--json")
    assert early.returncode == 0, early.stderr[-2000:]
    assert server.id not in json.loads(early.stdout)["agent_servers"]
    again = invoke("provision", "--agent-id", "torn-1", "--json", env_extra=env)
    assert again.returncode == 1, again.stderr[-2000:]
    [refused] = json.loads(again.stdout)["agents"]
    assert refused["status"] == "failed" and "still being provisioned by run" in refused["error"]
    assert [s.id for s in agent_servers(client, "torn-1")] == [server.id]

    # The host enrols by itself (cloud-init has the auth key): its device must go with it.
    wait_for(lambda: its_devices(server), 120, 1, "the half-made host's Tailscale device")
    past_its_lease(client, server)
    gc = invoke("gc", "--role", "provision", "--json")
    assert gc.returncode == 0, gc.stderr[-2000:]
    swept = json.loads(gc.stdout)
    assert server.id in swept["agent_servers"]
    assert f"deleting half-made agent server {server.id} (torn-1)" in gc.stderr
    assert agent_servers(client, "torn-1") == [] and its_devices(server) == []
    # fleet: the run's temporary key is gone too, nothing else changed


def test_provisioning_again_replaces_the_half_made_host_and_ends_ready(fleet, operator):
    client = fleet
    _, sk = operator
    env = agent_env(sk, **SHORT)
    old = killed_before_ready(client, "torn-2", env)
    old_devices = {d["id"] for d in wait_for(lambda: its_devices(old), 120, 1, "the half-made host's device")}
    past_its_lease(client, old)
    proc = invoke("provision", "--agent-id", "torn-2", "--json", env_extra=env)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        [agent] = json.loads(proc.stdout)["agents"]
        assert agent["status"] == "ready" and agent["server_id"] not in (None, old.id)
        assert f"[torn-2] replacing half-made server {old.id}" in proc.stderr
        [new] = agent_servers(client, "torn-2")
        assert new.id == agent["server_id"] and halfmade.LABEL not in new.labels
        left = {d["id"] for d in standin().devices() if d["hostname"] == "torn-2"}
        assert len(left) == 1 and not left & old_devices  # the old host's device went with it
    finally:
        assert invoke("deprovision", "--agent-id", "torn-2").returncode == 0
        invoke("gc", "--role", "provision")  # the killed run's temporary key
