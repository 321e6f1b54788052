"""An in-process local cloud API for tests that need no root and no machines.

It serves the real app (``create_app`` over a ``Cloud`` whose state lives in a temporary
directory) with the production uvicorn settings, on a loopback port, from a thread. Machines
are replaced by a stand-in that refuses to start, so nothing here boots a guest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from localcloud.api.app import create_app
from localcloud.engine import lifecycle
from localcloud.engine.cloud import Cloud
from localcloud.engine.faults import Faults
from localcloud.host.storage import Storage
from localcloud.paths import Layout
from localcloud.server import listen, uvicorn_config

TOKEN = "in-process-test-token"


class NoMachine:
    """In-process tests run no guests: starting one is an error the action reports."""

    def __init__(self, *args, **kwargs):
        self.running = False

    def start(self):
        raise RuntimeError("the in-process test cloud runs no machines")

    def booted(self):
        return False

    def poweroff(self, timeout: float = 20):
        pass


@dataclass
class LocalAPI:
    base: str
    token: str
    cloud: Cloud
    app: object

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def serve(app, listener_policies=None):
    """Run ``app`` with the production uvicorn config on 127.0.0.1:<free port>; returns (server, port, thread).
    ``listener_policies``: the connection caps for 127.0.0.1, when not the operator's (``listeners``)."""
    import uvicorn

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn_config(app, listener_policies))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the in-process API did not start"
        time.sleep(0.02)
    return server, sock.getsockname()[1], thread


@pytest.fixture
def local_api(tmp_path, monkeypatch):
    monkeypatch.setattr(lifecycle, "Machine", NoMachine)
    layout = Layout(tmp_path / "localcloud")
    layout.root.mkdir()
    storage = Storage(layout)
    for d in (layout.base_images, layout.disks, layout.snapshots):
        d.mkdir(parents=True)
    cloud = Cloud(layout, storage, Faults())
    app = create_app(cloud, TOKEN)
    server, port, thread = serve(app)
    yield LocalAPI(f"http://127.0.0.1:{port}", TOKEN, cloud, app)
    server.should_exit = True
    thread.join(10)


def boot_server(client, keypair, name: str, *, image=None, user_data: str | None = None, key=None):
    """A running server of the real local cloud, reachable with ``keypair`` (its SSH key ``key``, made when
    not given); returns (server, key).

    The caller deletes both (cloud_unchanged checks that it did).
    """
    from hcloud.images import Image
    from hcloud.server_types import ServerType

    key = key or client.ssh_keys.create(name=name, public_key=keypair.public_openssh)
    made = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=image or Image(name="debian-12"),
                                 ssh_keys=[key], user_data=user_data)
    made.action.wait_until_finished(120)
    return client.servers.get_by_id(made.server.id), key
