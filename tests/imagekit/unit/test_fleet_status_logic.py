"""`invoke status`'s judgement of one agent from the facts the cloud and the tailnet give, and what it says when a
check cannot be made (no SSH here: the services on real hosts are read in tests/imagekit/e2e/test_provision.py and
test_status_watch.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from imagekit.fleet.status import FleetView, Reach, _agent, verdict
from imagekit.host import hostkey
from imagekit.host.keys import new_ed25519
from imagekit.tailnet import Credentials, Tailnet

CREATED = datetime(2026, 11, 1, tzinfo=timezone.utc)
TAILNET = Tailnet(Credentials("http://127.0.0.1:1", "id", "secret", ("tag:openclaw-agent",)))


def server(labels=None, status="running", image=7):
    return SimpleNamespace(
        id=1, name="a-1", status=status, created=CREATED, image=SimpleNamespace(id=image),
        labels={"managed-by": "imagekit", "role": "agent", "agent-id": "a-1", "profile": "agent", "mode": "snapshot",
                **(labels or {})},
        server_type=SimpleNamespace(architecture="x86", name="cx23", prices=[
            {"location": "fsn1", "price_hourly": {"gross": "0.0071"}, "price_monthly": {"gross": "4.39"}}]),
        location=SimpleNamespace(name="fsn1"),
        public_net=SimpleNamespace(ipv4=SimpleNamespace(ip="10.0.0.2")), private_net=[])


def device(online=True, hostname="a-1", later=60):
    return {"id": "d1", "hostname": hostname, "tags": ["tag:openclaw-agent"], "connectedToControl": online,
            "created": (CREATED + timedelta(seconds=later)).isoformat().replace("+00:00", "Z")}


@pytest.mark.parametrize("srv, devices, newest, healthy, problems, drift", [
    (server(), [device()], 7, True, [], False),
    (server(), [device()], 9, True, [], True),  # a newer snapshot of its profile: drift, still healthy
    (server(status="off"), [device()], 7, False, ["server is off"], False),
    (server({"lease-until": "1"}), [device()], 7, False, ["not ready"], False),
    (server(), [device(online=False)], 7, False, ["no Tailscale node online"], False),
    (server(), [device(hostname="someone-else")], 7, False, ["no Tailscale node enrolled"], False),
    (server(), [device(later=-3600)], 7, False, ["no Tailscale node enrolled"], False),  # an older host's device
    (server({"tailscale": "no"}), [], 7, True, [], False),  # provisioned with --no-tailscale: not asked
])
def test_an_agents_health(srv, devices, newest, healthy, problems, drift):
    row = _agent(srv, FleetView([srv], {("agent", "x86"): newest}, TAILNET, devices), Reach(None))  # --api-only
    assert row["healthy"] is healthy and row["drift"] is drift and row["unchecked"] == []
    assert len(row["problems"]) == len(problems) and all(p in q for p, q in zip(problems, row["problems"], strict=True))
    assert row["snapshot_id"] == 7 and row["newest_snapshot_id"] == newest


def test_what_could_not_be_checked_is_not_healthy_and_says_why():
    """No key, or a tailnet that cannot be read: not healthy (null), with what was not checked and why; a problem
    found elsewhere still makes the agent unhealthy."""
    no_key = _agent(server(), FleetView([], {}, TAILNET, [device()]), Reach(None, "SSH_PRIVATE_KEY_PATH is not set"))
    assert no_key["healthy"] is None and no_key["service"] is None
    assert no_key["unchecked"] == ["openclaw-agent: SSH_PRIVATE_KEY_PATH is not set"]
    no_tailnet = _agent(server(), FleetView([], {}, tailnet_gap="no Tailscale credentials"), Reach(None))
    assert no_tailnet["healthy"] is None and no_tailnet["unchecked"] == ["Tailscale: no Tailscale credentials"]
    off = _agent(server(status="off"), FleetView([], {}, tailnet_gap="no credentials"), Reach(None, "no key"))
    assert off["healthy"] is False and off["problems"] == ["server is off"]
    assert _agent(server({"tailscale": "no"}), FleetView([], {}), Reach(None))["healthy"] is True


def test_a_host_that_refuses_ssh_is_unchecked_not_healthy():
    """SSH to a closed port on loopback: refused at once; the service is not checked, and the row says so."""
    srv = server({"host-key": hostkey.new().fingerprint})
    srv.public_net.ipv4.ip = "127.0.0.1"  # port 22: refused here (nothing listens), or our key refused (CI)
    row = _agent(srv, FleetView([], {}, TAILNET, [device()]), Reach(new_ed25519()))
    assert row["healthy"] is None and row["ssh"] is False and row["problems"] == []
    assert len(row["unchecked"]) == 1 and row["unchecked"][0].startswith("openclaw-agent: SSH to 127.0.0.1 failed")


def test_a_server_without_a_pinned_host_key_is_not_reached_and_says_how_to_pin_it():
    srv = server()
    srv.public_net.ipv4.ip = "127.0.0.1"
    row = _agent(srv, FleetView([], {}, TAILNET, [device()]), Reach(new_ed25519()))
    assert row["healthy"] is None and row["ssh"] is None and row["problems"] == []
    [gap] = row["unchecked"]
    assert "server 1 (a-1) has no host-key label" in gap and "invoke roll --trust-unpinned --agent-id a-1" in gap


def test_the_verdict_names_the_missing_the_unhealthy_and_the_unchecked():
    rows = [{"agent_id": "a", "healthy": True, "problems": [], "unchecked": []},
            {"agent_id": "b", "healthy": False, "problems": ["server is off"], "unchecked": []},
            {"agent_id": "c", "healthy": None, "problems": [], "unchecked": ["openclaw-agent: no key"]}]
    assert verdict({"agents": rows[:1], "missing": []}) is None
    assert verdict({"agents": [], "missing": ["nobody"]}) == "no such agent: nobody (see `invoke list`)"
    assert verdict({"agents": rows, "missing": []}) == ("1 of 3 agent(s) unhealthy: b: server is off; "
                                                        "1 of 3 agent(s) unchecked: c: openclaw-agent: no key")
