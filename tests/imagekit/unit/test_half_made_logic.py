"""Half-made agents: a server carries its run's lease as a label until the agent is ready, so that
one left by a run that died (SIGKILL) is swept by gc and replaced by the next provision instead of
passing for a ready agent; a create the SDK retried adopts its own server. Against the local cloud's
API in this process (records only: nothing boots); the killed run itself is
tests/imagekit/e2e/test_half_made.py."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from api_records import add_server, add_snapshot
from hcloud.images import Image
from hcloud.server_types import ServerType

from imagekit import settings
from imagekit.cloud import api as cloudapi
from imagekit.cloud import leases
from imagekit.cloud.servers import delete
from imagekit.cloud.spec import ServerSpec
from imagekit.errors import CloudError
from imagekit.fleet.gc import collect_garbage
from imagekit.host.keys import new_ed25519
from imagekit.provision import ProvisionOptions, halfmade, provision
from imagekit.provision import agent as agent_steps
from imagekit.steps import ready
from imagekit.steps import server as server_steps
from imagekit.steps.server import create

API_URL = "https://agents.example.test/api"
TAGS = ["tag:openclaw-agent"]  # TAILSCALE_TAGS' default


def agent_labels(name: str, until: float | None, deployment: str = "20260101000000-dead00") -> dict:
    marker = {halfmade.LABEL: str(int(until))} if until is not None else {}
    return cloudapi.labels(role="agent", profile="agent", mode="snapshot", deployment=deployment,
                           **{"agent-id": name}, **marker)


def ago(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


# Leases relative to the moment a test runs (a suite can reach these tests long after collecting them).
DEAD = -5  # a lease its run would have renewed, had it lived
LONG_DEAD = -600
LIVE = 600


def at(offset: float) -> float:
    return time.time() + offset


@pytest.fixture
def tidy(api):
    """An SDK client; servers, firewalls and keys the test made go at its end."""
    client = cloudapi.connect(api.target)
    store = api.cloud.store
    before = {kind: set(store[kind]) for kind in ("servers", "firewalls", "ssh_keys")}
    yield client
    for sid in set(store["servers"]) - before["servers"]:
        if store["servers"].get(sid, {}).get("status") not in (None, "deleting"):
            delete(client, client.servers.get_by_id(sid), f"deleting server {sid}")
    for fid in set(store["firewalls"]) - before["firewalls"]:
        client.firewalls.delete(client.firewalls.get_by_id(fid))
    for kid in set(store["ssh_keys"]) - before["ssh_keys"]:
        client.ssh_keys.delete(client.ssh_keys.get_by_id(kid))


@pytest.mark.parametrize("labels, abandoned, busy", [
    ({}, False, False),  # a ready agent
    ({halfmade.LABEL: LIVE}, False, True),  # its run is at work (renewing its lease)
    ({halfmade.LABEL: DEAD}, True, False),
    ({halfmade.LABEL: "garbled"}, True, False),  # no run can claim it
])
def test_when_a_half_made_server_is_abandoned(labels, abandoned, busy):
    labels = {k: v if isinstance(v, str) else str(int(at(v))) for k, v in labels.items()}
    server = SimpleNamespace(id=7, labels={"deployment": "run-1", **labels})
    assert halfmade.abandoned(server) is abandoned
    assert (halfmade.busy(server) is not None) is busy
    if busy:
        assert "still being provisioned by run run-1" in halfmade.busy(server)


def test_the_label_is_on_from_creation_until_the_agent_is_ready(api, clean_settings, tidy, monkeypatch):
    client = tidy
    snap = add_snapshot(api.cloud, profile="unit-halfmade")
    at_boot = {}

    def boot(self, a):  # what the server carries while it is being made; nothing boots here
        at_boot.update(client.servers.get_by_id(a.server.id).labels)

    monkeypatch.setattr(server_steps.Boot, "run", boot)
    for step in (ready.WaitSSH, ready.WaitCloudInit, agent_steps.AgentRunning):
        monkeypatch.setattr(step, "run", lambda self, a: None)
    t0 = time.time()
    lease = leases.AHEAD * settings.lease_interval()
    result = provision(api.target, ProvisionOptions(agent_ids=["unit-marked"], api_url=API_URL, tailscale=False,
                                                    snapshot=str(snap), timeout=300), lambda line: None)
    [agent] = result["agents"]
    assert agent["status"] == "ready", agent["error"]
    assert t0 + lease - 1 <= int(at_boot[halfmade.LABEL]) <= time.time() + lease
    labels = client.servers.get_by_id(agent["server_id"]).labels
    assert halfmade.LABEL not in labels
    assert labels["agent-id"] == "unit-marked" and labels["deployment"] == result["deployment"]


def test_provision_replaces_an_abandoned_server_and_refuses_a_busy_one(api, clean_settings, tidy):
    client = tidy
    snap = add_snapshot(api.cloud, profile="unit-halfmade")
    operator = client.ssh_keys.create(name="unit-halfmade-operator", public_key=new_ed25519().public_openssh)
    clean_settings.setenv("HETZNER_SSH_KEY_ID", str(operator.id))
    dead = add_server(api.cloud, "unit-redo", agent_labels("unit-redo", at(DEAD)), created=ago(30))
    busy = add_server(api.cloud, "unit-busy", agent_labels("unit-busy", at(LIVE)), created=ago(1))
    done = add_server(api.cloud, "unit-done", agent_labels("unit-done", None), created=ago(30))
    lines = []
    result = provision(api.target, ProvisionOptions(agent_ids=["unit-redo", "unit-busy", "unit-done"],
                                                    api_url=API_URL, tailscale=False, wait=False,
                                                    snapshot=str(snap)), lines.append)
    agents = {a["agent_id"]: a for a in result["agents"]}
    assert agents["unit-redo"]["status"] == "created" and agents["unit-redo"]["server_id"] not in (None, dead)
    assert dead not in api.cloud.store["servers"]
    assert any(f"[unit-redo] replacing half-made server {dead}: its provisioning run" in line for line in lines)
    assert agents["unit-busy"]["status"] == "failed" and agents["unit-busy"]["server_id"] == busy
    assert "still being provisioned by run 20260101000000-dead00" in agents["unit-busy"]["error"]
    assert agents["unit-done"]["status"] == "existing" and agents["unit-done"]["server_id"] == done
    assert {busy, done} <= set(api.cloud.store["servers"])


def test_gc_sweeps_abandoned_half_made_agents_and_only_their_own_devices(api, standin, clean_settings, tidy):
    for name, value in (("TAILSCALE_OAUTH_CLIENT_ID", standin.client_id),
                        ("TAILSCALE_OAUTH_CLIENT_SECRET", standin.client_secret), ("TAILSCALE_API_URL", standin.api)):
        clean_settings.setenv(name, value)
    dead = add_server(api.cloud, "unit-dead", agent_labels("unit-dead", at(LONG_DEAD)), created=ago(30))
    recent = add_server(api.cloud, "unit-recent", agent_labels("unit-recent", at(DEAD)), created=ago(30))
    other = add_server(api.cloud, "unit-no-agent", agent_labels("unit-no-agent", at(DEAD)) | {"role": "other"},
                       created=ago(30))
    keep = [add_server(api.cloud, "unit-alive", agent_labels("unit-alive", at(LIVE)), created=ago(30)),
            add_server(api.cloud, "unit-ready", agent_labels("unit-ready", None), created=ago(30)),
            add_server(api.cloud, "unit-foreign", {halfmade.LABEL: "1", "role": "agent"}, created=ago(30))]

    def enrol(hostname: str, tags: list[str]) -> str:
        key = standin.state.create_key({"reusable": False, "ephemeral": True, "preauthorized": True, "tags": tags},
                                       600, "unit")
        return standin.state.register(key["key"], hostname, "linux", "unit", [])["device_id"]

    own = enrol("unit-dead", TAGS)
    laptop = enrol("unit-dead", [])  # a person's laptop with the agent's hostname stays
    lines = []
    swept = collect_garbage(api.target, 5, lines.append, role="provision")  # --older-than 5: `recent` ended 5 s ago
    assert swept["agent_servers"] == [dead] and swept["servers"] == []
    assert swept["tailscale_devices_deleted"] == [own]
    assert any(f"deleting half-made agent server {dead} (unit-dead): its provisioning run" in line for line in lines)
    assert {d["id"] for d in standin.state.list_devices()} >= {laptop} and own not in {
        d["id"] for d in standin.state.list_devices()}
    assert collect_garbage(api.target, 0, lines.append, role="builder")["agent_servers"] == []
    every = collect_garbage(api.target, 0, lines.append)  # anything of imagekit's whose lease ended: `other` too
    assert every["agent_servers"] == [recent] and every["other_servers"] == [other]
    assert set(keep) <= set(api.cloud.store["servers"]) and not {dead, recent, other} & set(api.cloud.store["servers"])
    standin.state.delete_device(laptop)


def test_a_retried_create_adopts_its_own_server_and_refuses_anyone_elses(api, tidy):
    """The SDK sends a create again after a timeout or a 502/504; the first one may have made the server."""
    client = tidy
    image = Image(id=add_snapshot(api.cloud, profile="unit-retry"))
    spec = ServerSpec(server_type=ServerType(name="cx23"), image=image)
    ours = agent_labels("unit-retry", at(LIVE), deployment="run-ours")
    made = add_server(api.cloud, "unit-retry", ours)
    server, action = create(client, "unit-retry", replace(spec, labels=ours))
    assert server.id == made and action.command == "create_server"
    with pytest.raises(CloudError, match="a server named 'unit-retry' exists already and this run did not make it"):
        create(client, "unit-retry", replace(spec, labels=agent_labels("unit-retry", at(LIVE), deployment="run-other")))
    assert [s.id for s in client.servers.get_all(name="unit-retry")] == [made]
