"""Shared fixtures: the local cloud (started once per run) and an SDK client for it."""

from __future__ import annotations

import os
import time

import pytest
from hcloud import Client

from imagekit.keys import new_ed25519
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


def leftovers(client: Client) -> list:
    wait_for(lambda: not [s for s in client.servers.get_all() if s.status == "deleting"], 60, what="deletions")
    return (client.servers.get_all() + client.images.get_all(type="snapshot") + client.ssh_keys.get_all()
            + client.firewalls.get_all())


def sweep(client: Client) -> None:
    for fw in client.firewalls.get_all():
        for action in fw.remove_from_resources([r for r in fw.applied_to]) if fw.applied_to else []:
            action.wait_until_finished(30)
        fw.delete()
    for server in client.servers.get_all():
        if server.protection["delete"]:
            server.change_protection(delete=False).wait_until_finished(30)
        client.servers.delete(server).wait_until_finished(120)
    for item in client.images.get_all(type="snapshot") + client.ssh_keys.get_all():
        item.delete()


@pytest.fixture
def empty_cloud(client):
    """Start from and end with an empty cloud; what a test leaves behind fails it (and is swept)."""
    assert leftovers(client) == [], "the cloud was not empty before the test"
    yield client
    left = leftovers(client)
    sweep(client)
    assert left == [], f"left behind: {[(type(x).__name__, x.id) for x in left]}"
