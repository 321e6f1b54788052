"""Fleets that cost less, end to end on the local cloud, from the session's snapshot: an agent provisioned with a
TTL of seconds carries its expiry, which status shows; caps (and --spread's limit) refuse provision and run with
nothing created; `invoke cost --json` adds up to what the API's /pricing says; gc deletes the expired agent with
its Tailscale device. Meanwhile two agents provisioned with --spread land in one placement group of their run;
a roll puts their replacements in a second group (the first goes with its old hosts), which deprovision deletes
with them. The arithmetic, durations, caps and groups alone:
tests/imagekit/unit/test_cost_logic.py, tests/imagekit/unit/test_spread_logic.py."""

from __future__ import annotations

import json
import time

import pytest
from operator_cli import agent_env, invoke, start
from test_operator_network import twin_of

from imagekit import tailnet
from imagekit.target import Target
from localcloud import client as localcloud
from tests.conftest import inventory

pytestmark = pytest.mark.e2e


def devices(hostname: str) -> set[str]:
    """The ids of the devices the local cloud's Tailscale stand-in has enrolled under ``hostname``."""
    ep = localcloud.current()
    return {d["id"] for d in tailnet.Tailnet(tailnet.credentials(Target(ep.endpoint, ep.token, local=True)))
            .devices() if d["hostname"] == hostname}


def expected_cost(client) -> dict:
    """What every server, Primary IPv4 and snapshot of the project costs, gross, read straight from /pricing."""
    pricing = client.request("GET", "/pricing")["pricing"]

    def gross(prices, location, field):
        return float(next(p for p in prices if p["location"] == location)[field]["gross"])

    types = {t["name"]: t["prices"] for t in pricing["server_types"]}
    ipv4 = next(p["prices"] for p in pricing["primary_ips"] if p["type"] == "ipv4")
    servers = [s for s in client.servers.get_all() if s.status != "deleting"]
    ips = [p for p in client.primary_ips.get_all() if p.type == "ipv4"]
    gb = sum(i.image_size for i in client.images.get_all(type="snapshot"))
    hourly = sum(gross(types[s.server_type.name], s.location.name, "price_hourly") for s in servers) + \
        sum(gross(ipv4, p.location.name, "price_hourly") for p in ips)
    monthly = sum(gross(types[s.server_type.name], s.location.name, "price_monthly") for s in servers) + \
        sum(gross(ipv4, p.location.name, "price_monthly") for p in ips)
    storage = gb * float(pricing["image"]["price_per_gb_month"]["gross"])
    return {"servers": len(servers), "ipv4s": len(ips), "gb": gb, "hourly": hourly, "monthly": monthly,
            "storage": storage}


def test_ttl_caps_cost_and_spread(fleet, operator, snapshot, key_env):
    client, (_, sk) = fleet, operator
    env = agent_env(sk)
    earlier, asked = devices("bill-1"), time.time()
    spread = start("provision", "--agent-id", "wide-1,wide-2", "--spread", "--no-tailscale", "--json", env_extra=env)
    made = invoke("provision", "--agent-id", "bill-1", "--ttl", "5s", "--json", env_extra=env)
    assert made.returncode == 0, made.stderr[-3000:]
    out, err = spread.communicate(timeout=900)
    assert spread.returncode == 0, err[-3000:]
    wide = json.loads(out)
    [group] = client.placement_groups.get_all(label_selector="managed-by=imagekit,role=spread")
    assert group.type == "spread" and group.labels["run"] == wide["deployment"]
    assert sorted(group.servers) == sorted(a["server_id"] for a in wide["agents"])
    [agent] = json.loads(made.stdout)["agents"]
    server = client.servers.get_by_id(agent["server_id"])
    expires = int(server.labels["expires-at"])
    assert asked + 5 <= expires + 1 and expires <= time.time() + 5  # set when its server was created
    enrolled = devices("bill-1") - earlier
    assert len(enrolled) == 1

    status = invoke("status", "--agent-id", "bill-1", "--api-only", "--json")
    [row] = json.loads(status.stdout)["agents"]
    assert row["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))

    # Caps: checked before anything exists, counting what runs; the error names the cap, the counts, the fix.
    before = inventory(client)
    count = len(before["servers"])
    refused = invoke("provision", "--agent-id", "bill-2", "--json",
                     env_extra={**env, "IMAGEKIT_MAX_SERVERS": str(count)})
    assert refused.returncode == 1
    assert f"error: provision: IMAGEKIT_MAX_SERVERS is {count} and the project has {count} server(s): " \
           f"provision's 1 new server(s) would make {count + 1}; nothing was created" in refused.stderr
    job = invoke("run", "--job-id", "bill-job", "--", "true", env_extra={**env, "IMAGEKIT_MAX_HOURLY": "0.001"})
    assert job.returncode == 1 and "error: run: IMAGEKIT_MAX_HOURLY is 0.001 EUR/hour (gross)" in job.stderr, job.stderr
    assert "raise IMAGEKIT_MAX_HOURLY" in job.stderr
    many = invoke("provision", "--count", "11", "--agent-id", "many", "--spread", env_extra=env)
    assert many.returncode == 1 and "--spread: a spread placement group holds at most 10 servers (Hetzner's limit) " \
        "and this run has 11 agents" in many.stderr, many.stderr
    assert inventory(client) == before

    # What it all costs, from /pricing only; a cap passed (as by two runs at once) shows as excess.
    cost = invoke("cost", "--json", env_extra={"IMAGEKIT_MAX_SERVERS": str(count - 1)})
    assert cost.returncode == 0, cost.stderr
    got, want = json.loads(cost.stdout), expected_cost(client)
    assert got["groups"]["fleet"]["count"] == 3 and got["caps"]["servers"] == want["servers"] == count
    assert got["caps"]["servers_over"] == 1 and got["caps"]["hourly_over"] is None
    assert got["groups"]["primary_ipv4s"]["count"] == want["ipv4s"] >= 1
    assert got["caps"]["hourly"] == pytest.approx(want["hourly"], abs=1e-5)
    assert got["groups"]["snapshots"]["gb"] == pytest.approx(want["gb"], abs=1e-3) and want["gb"] > 0
    assert got["groups"]["snapshots"]["monthly"] == pytest.approx(want["storage"], abs=1e-4)
    assert got["total"]["monthly"] == pytest.approx(want["monthly"] + want["storage"], abs=1e-3)
    assert sum(g["hourly"] for g in got["groups"].values()) == pytest.approx(got["total"]["hourly"], abs=1e-5)

    # A roll keeps the spread: the replacements go into a second group made for the roll (the old one is full until
    # its hosts go), and the old group goes with its last old host.
    twin = None
    try:
        twin = twin_of(client, snapshot)
        rolled = invoke("roll", "--agent-id", "wide-1,wide-2", "--to", str(twin), "--batch", "2", "--json",
                        env_extra=key_env)
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        result = json.loads(rolled.stdout)
        assert {a["status"] for a in result["agents"]} == {"rolled"}, result
        [second] = client.placement_groups.get_all(label_selector="managed-by=imagekit,role=spread")
        assert second.id != group.id and second.type == "spread" and second.labels["run"] == result["run_id"]
        assert sorted(second.servers) == sorted(a["new_server_id"] for a in result["agents"])

        # The group goes with the last of its agents.
        gone = invoke("deprovision", "--agent-id", "wide-1,wide-2", "--json")
        assert gone.returncode == 0, gone.stderr[-2000:]
        assert json.loads(gone.stdout)["placement_groups_deleted"] == [second.id]
        assert {group.id, second.id} & {g.id for g in client.placement_groups.get_all()} == set()
    finally:
        invoke("deprovision", "--agent-id", "wide-1,wide-2")
        if twin is not None:
            client.images.get_by_id(twin).delete()

    # Expired: gc deletes it with its Tailscale device (no grace: --older-than 0).
    time.sleep(max(0.0, expires + 1 - time.time()))
    gc = invoke("gc", "--json")
    assert gc.returncode == 0, gc.stderr[-2000:]
    swept = json.loads(gc.stdout)
    assert swept["expired"] == [agent["server_id"]] and swept["tailscale_devices_deleted"] == [*enrolled]
    assert f"deleting expired agent server {agent['server_id']} (bill-1): its TTL ended at" in gc.stderr
    assert devices("bill-1") & enrolled == set()
