"""An in-process local cloud API for tests that need no root and no machines.

It serves the real app (``create_app`` over a ``Cloud`` whose state lives in a temporary
directory) with the production uvicorn settings, on a loopback port, from a thread. Machines
are replaced by a stand-in that refuses to start, so nothing here boots a guest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


def boot_server(client, keypair, name: str, *, image=None, user_data: str | None = None, key=None,
                server_type: str = "cx23"):
    """A running server of the real local cloud, reachable with ``keypair`` (its SSH key ``key``, made when
    not given); returns (server, key).

    The caller deletes both (cloud_unchanged checks that it did).
    """
    from hcloud.images import Image
    from hcloud.server_types import ServerType

    key = key or client.ssh_keys.create(name=name, public_key=keypair.public_openssh)
    made = client.servers.create(name=name, server_type=ServerType(name=server_type),
                                 image=image or Image(name="debian-12"), ssh_keys=[key], user_data=user_data)
    made.action.wait_until_finished(120)
    return client.servers.get_by_id(made.server.id), key


ARM_IMAGE_TIMEOUT = 1200  # seconds: the arm64 image is built at its first use, under emulation (minutes)


@pytest.fixture(scope="session")
def arm_image(client, cloud_endpoint):
    """The local cloud's ``debian-12`` of architecture arm, built now if this local cloud has not built it yet. A
    host that cannot run arm64 programs fails here with the local cloud's reason (what ``invoke cloud-status``
    says)."""
    deadline = time.monotonic() + ARM_IMAGE_TIMEOUT
    arm = cloud_endpoint.admin("PUT", "/_admin/architectures/arm")
    while arm["arm"] != "ready":
        assert arm["arm"] == "building", f"this local cloud runs no arm servers: {arm['arm']}, {arm['arm_reason']}"
        assert time.monotonic() < deadline, f"the arm64 system image was not built in {ARM_IMAGE_TIMEOUT} s"
        time.sleep(5)
        arm = cloud_endpoint.admin("GET", "/_admin/health")["architectures"]
    return client.images.get_by_name_and_architecture("debian-12", "arm")


@pytest.fixture
def hcloud_cli(cloud_endpoint):
    """Debian's `hcloud` CLI against the running local cloud: ``hcloud_cli(*args)`` returns its output."""
    exe = shutil.which("hcloud")
    if exe is None:
        pytest.fail("the hcloud CLI is missing: `apt-get install hcloud-cli` (.ci/setup installs it)")
    env = dict(os.environ, HCLOUD_TOKEN=cloud_endpoint.token, HCLOUD_ENDPOINT=cloud_endpoint.endpoint)

    def run(*args: str) -> str:
        proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"hcloud {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    return run
