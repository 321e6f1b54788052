"""The warm pool end to end: `pool fill` boots and checks hosts from the session's snapshot and says what they cost;
`provision` claims one (the image and agent suites pass on it, enrolled under the agent's name), two provisioners
racing for the last host get it once between them, `--refill` tops the pool up, a newer snapshot makes `fill`
replace the hosts of the older one, `drain` empties it; the cloud as the test found it at the end."""

from __future__ import annotations

import json
import subprocess

import pytest
from operator_cli import agent_env, invoke, start
from test_provision import host_suite, standin
from test_update import on_host

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a build of its own, or a pool of hosts: minutes

POOL = "managed-by=imagekit,role=pool,profile=agent"


def members(client) -> list:
    return [s for s in client.servers.get_all(label_selector=POOL) if s.status != "deleting"]


def provisioned(proc) -> dict:
    out, err = proc.communicate(timeout=600) if isinstance(proc, subprocess.Popen) else (proc.stdout, proc.stderr)
    assert proc.returncode == 0, err[-3000:]
    [agent] = json.loads(out)["agents"]
    assert agent["status"] == "ready", agent
    return agent


def test_pool_fill_claim_race_refill_replace_drain(fleet, snapshot, operator, client, tmp_path):
    key, sk = operator
    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    env = agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file))
    agents = ["pool-1", "race-a", "race-b", "refill-1"]
    newer = None
    try:
        # Without the private half of the operator's key a pool host could never be claimed: refused, nothing made.
        refused = invoke("pool", "fill", "--size", "1", env_extra=agent_env(sk))
        assert refused.returncode == 1 and "SSH_PRIVATE_KEY_PATH" in refused.stderr and not members(client)

        filled = invoke("pool", "fill", "--size", "2", "--json", env_extra=env)
        assert filled.returncode == 0, filled.stderr[-3000:]
        result = json.loads(filled.stdout)
        assert len(result["created"]) == 2 and result["deleted"] == [] and result["failed"] == []
        assert {(m["ready"], m["snapshot_id"], m["stale"]) for m in result["members"]} == {(True, snapshot, False)}
        cost = result["cost"]
        assert cost["hosts"] == 2 and cost["hourly_gross"] > 0 and cost["monthly_gross"] > 0
        assert "EUR/month" in filled.stderr
        for server in members(client):
            assert server.labels["pool-key"] == str(sk.id) and "lease-until" not in server.labels
            assert len(server.labels["host-key"]) == 43  # pinned: every SSH login to it checks that key
            assert server.image.id == snapshot and server.status == "running"
        # Unassigned: no agent configuration, not enrolled, only the operator's key.
        ip = members(client)[0].public_net.ipv4.ip
        assert on_host(ip, key, "test -e /opt/openclaw/config/agent.env && echo configured || echo unassigned") \
            == "unassigned"
        assert json.loads(on_host(ip, key, "tailscale status --json"))["BackendState"] != "Running"
        status = json.loads(invoke("pool", "status", "--json", env_extra=env).stdout)
        assert status["ready"] == 2 and status["stale"] == 0

        # A claim: the pool host becomes the agent (renamed, relabelled), passes the same suites as a cold host.
        pins = {s.id: s.labels["host-key"] for s in members(client)}
        pool_ids = set(pins)
        claimed = provisioned(invoke("provision", "--agent-id", "pool-1", "--json", env_extra=env))
        assert claimed["mode"] == "pool" and claimed["server_id"] in pool_ids
        assert list(claimed["events"]) == ["claimed", "enrolled", "configured", "ready"]
        server = client.servers.get_by_id(claimed["server_id"])
        assert server.name == "pool-1" and server.labels["role"] == "agent" and server.labels["agent-id"] == "pool-1"
        assert "lease-until" not in server.labels and server.labels["mode"] == "snapshot"
        assert server.labels["host-key"] == pins[server.id]  # the key it was made with, still pinned
        host_suite(claimed["ipv4"], key, "pool-1", "pool")
        assert [d["hostname"] for d in standin().devices() if d["hostname"] == "pool-1"] == ["pool-1"]
        assert len(members(client)) == 1

        # Two provisioners race for the one host left: it goes to exactly one, the other agent is made cold.
        racers = [start("provision", "--agent-id", agent, "--json", env_extra=env) for agent in ("race-a", "race-b")]
        raced = [provisioned(p) for p in racers]
        assert sorted(a["mode"] for a in raced) == ["pool", "snapshot"], raced
        assert raced[0]["server_id"] != raced[1]["server_id"] and not members(client)

        # --refill: the claimed host is replaced by a new one.
        assert invoke("pool", "fill", "--size", "1", env_extra=env).returncode == 0
        [before] = members(client)
        refilled = provisioned(invoke("provision", "--agent-id", "refill-1", "--refill", "--json", env_extra=env))
        assert refilled["mode"] == "pool" and refilled["server_id"] == before.id
        [after] = members(client)
        assert after.id != before.id and "lease-until" not in after.labels

        # A newer snapshot of the profile: fill replaces the host of the older one.
        labels = {**client.images.get_by_id(snapshot).labels, "build-id": "pool-test-newer"}
        made = client.servers.create_image(after, type="snapshot", description="imagekit pool test: newer",
                                           labels=labels)
        made.action.wait_until_finished(120)
        newer = made.image.id
        assert json.loads(invoke("pool", "status", "--json", env_extra=env).stdout)["stale"] == 1
        replaced = json.loads(invoke("pool", "fill", "--size", "1", "--json", env_extra=env).stdout)
        assert replaced["deleted"] == [after.id] and len(replaced["created"]) == 1
        assert [m["snapshot_id"] for m in replaced["members"]] == [newer]

        drained = invoke("pool", "drain", "--json", env_extra=env)
        assert drained.returncode == 0 and json.loads(drained.stdout)["deleted"] == replaced["created"]
        assert not members(client)
    finally:
        invoke("pool", "drain", env_extra=env)
        invoke("deprovision", "--agent-id", ",".join(agents), env_extra=env)
        if newer is not None:
            client.images.get_by_id(newer).delete()
