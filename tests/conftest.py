"""Shared fixtures: the local cloud (started once per run) and an SDK client for it."""

from __future__ import annotations

import os
import time

import pytest
from hcloud import Client

from imagekit.host.keys import new_ed25519
from localcloud import client as control


@pytest.fixture(scope="session")
def cloud_endpoint():
    if os.geteuid() != 0:
        pytest.skip("the local cloud needs root")
    return control.up(progress=lambda m: None)


@pytest.fixture(scope="session")
def client(cloud_endpoint) -> Client:
    return Client(token=cloud_endpoint.token, api_endpoint=cloud_endpoint.endpoint, application_name="imagekit-tests",
                  poll_interval=0.2)


@pytest.fixture
def keypair():
    return new_ed25519("imagekit-test")


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def inventory(client: Client) -> dict[str, set[int]]:
    """Every server, snapshot, SSH key, firewall, network, placement group and Primary IP in the cloud, by id
    (deletions in flight awaited)."""
    wait_for(lambda: not [s for s in client.servers.get_all() if s.status == "deleting"], 120, what="deletions")
    return {"servers": {s.id for s in client.servers.get_all()},
            "snapshots": {i.id for i in client.images.get_all(type="snapshot")},
            "ssh_keys": {k.id for k in client.ssh_keys.get_all()},
            "firewalls": {f.id for f in client.firewalls.get_all()},
            "networks": {n.id for n in client.networks.get_all()},
            "placement_groups": {g.id for g in client.placement_groups.get_all()},
            "primary_ips": {p.id for p in client.primary_ips.get_all()}}


def changes(before: dict[str, set[int]], after: dict[str, set[int]]) -> dict[str, dict[str, list[int]]]:
    """What appeared and what disappeared between two inventories (empty lists left out)."""
    out = {"left behind": {k: sorted(after[k] - before[k]) for k in after},
           "deleted": {k: sorted(before[k] - after[k]) for k in after}}
    return {what: {k: v for k, v in kinds.items() if v} for what, kinds in out.items() if any(kinds.values())}


def sweep(client: Client, made: dict[str, set[int]]) -> None:
    """Delete what a test left behind, and only that."""
    for fid in made.get("firewalls", ()):
        fw = client.firewalls.get_by_id(fid)
        if fw.applied_to:
            for action in fw.remove_from_resources(fw.applied_to):
                action.wait_until_finished(30)
    for sid in made.get("servers", ()):
        server = client.servers.get_by_id(sid)
        if server.protection["delete"]:
            server.change_protection(delete=False).wait_until_finished(30)
        client.servers.delete(server).wait_until_finished(120)
    for fid in made.get("firewalls", ()):
        client.firewalls.get_by_id(fid).delete()
    for nid in made.get("networks", ()):
        network = client.networks.get_by_id(nid)
        if network.protection["delete"]:
            network.change_protection(delete=False).wait_until_finished(30)
        network.delete()
    for gid in made.get("placement_groups", ()):
        client.placement_groups.get_by_id(gid).delete()
    for iid in made.get("snapshots", ()):
        client.images.get_by_id(iid).delete()
    for kid in made.get("ssh_keys", ()):
        client.ssh_keys.get_by_id(kid).delete()
    remaining = {p.id: p for p in client.primary_ips.get_all()}  # a deleted server took its auto_delete ones
    for pid in made.get("primary_ips", ()):
        primary_ip = remaining.get(pid)
        if primary_ip is not None and primary_ip.assignee_id is None:
            client.primary_ips.delete(primary_ip)


@pytest.fixture
def cloud_unchanged(client):
    """The cloud as the test found it: what the test made must be gone at its end (else it fails and is
    swept), and nothing it did not make may be touched. Other resources (an operator's snapshot) may exist."""
    before = inventory(client)
    yield client
    after = inventory(client)
    diff = changes(before, after)
    sweep(client, {k: after[k] - before[k] for k in after})
    assert diff == {}, f"the test changed the cloud: {diff}"
