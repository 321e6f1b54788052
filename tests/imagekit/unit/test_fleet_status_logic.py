"""`invoke status`'s judgement of one agent from the facts the cloud and the tailnet give (no SSH here: the
services on real hosts are read in tests/imagekit/e2e/test_provision.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from imagekit.fleet.status import _agent
from imagekit.tailnet import Credentials, Tailnet

CREATED = datetime(2026, 11, 1, tzinfo=timezone.utc)
TAILNET = Tailnet(Credentials("http://127.0.0.1:1", "id", "secret", ("tag:openclaw-agent",)))


def server(labels=None, status="running", image=7):
    return SimpleNamespace(
        id=1, name="a-1", status=status, created=CREATED, image=SimpleNamespace(id=image),
        labels={"managed-by": "imagekit", "role": "agent", "agent-id": "a-1", "profile": "agent", "mode": "snapshot",
                **(labels or {})},
        server_type=SimpleNamespace(architecture="x86"),
        public_net=SimpleNamespace(ipv4=SimpleNamespace(ip="10.0.0.2")))


def device(online=True, hostname="a-1", later=60):
    return {"id": "d1", "hostname": hostname, "tags": ["tag:openclaw-agent"], "connectedToControl": online,
            "created": (CREATED + timedelta(seconds=later)).isoformat().replace("+00:00", "Z")}


@pytest.mark.parametrize("srv, devices, newest, healthy, problems, drift", [
    (server(), [device()], 7, True, [], False),
    (server(), [device()], 9, True, [], True),  # a newer snapshot of its profile: drift, still healthy
    (server(status="off"), [device()], 7, False, ["server is off"], False),
    (server({"provisioning-until": "1"}), [device()], 7, False, ["not ready"], False),
    (server(), [device(online=False)], 7, False, ["no Tailscale node online"], False),
    (server(), [device(hostname="someone-else")], 7, False, ["no Tailscale node enrolled"], False),
    (server(), [device(later=-3600)], 7, False, ["no Tailscale node enrolled"], False),  # an older host's device
    (server({"tailscale": "no"}), [], 7, True, [], False),  # provisioned with --no-tailscale: not asked
])
def test_an_agents_health(srv, devices, newest, healthy, problems, drift):
    row = _agent(srv, None, {("agent", "x86"): newest}, TAILNET, devices)
    assert row["healthy"] is healthy and row["drift"] is drift
    assert len(row["problems"]) == len(problems) and all(p in q for p, q in zip(problems, row["problems"], strict=True))
    assert row["snapshot_id"] == 7 and row["newest_snapshot_id"] == newest


def test_without_the_tailnet_or_a_key_only_what_is_known_counts():
    row = _agent(server(), None, {}, None, None)
    assert row["healthy"] and row["tailscale_online"] is None and row["service"] is None and row["drift"] is False
