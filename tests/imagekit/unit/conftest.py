"""An in-process local cloud API for checks that need the API but neither root nor machines: the
input checks of build and provision, which must fail before anything is created."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

import pytest
import uvicorn

from imagekit import settings
from imagekit.target import Target


@pytest.fixture(scope="session")
def api(tmp_path_factory):
    from localcloud.app import create_app
    from localcloud.cloud import Cloud
    from localcloud.faults import Faults
    from localcloud.paths import Layout
    from localcloud.storage import Storage

    layout = Layout(tmp_path_factory.mktemp("localcloud"))
    cloud = Cloud(layout, Storage(layout), Faults())
    token = "unit-test-token"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(create_app(cloud, token), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = sock.getsockname()[1]
    yield SimpleNamespace(target=Target(f"http://127.0.0.1:{port}/v1", token, local=False), cloud=cloud)
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def clean_settings(monkeypatch, tmp_path):
    """No setting from this machine's environment or a config file leaks into a test."""
    for name in [*settings.DEFAULTS, "HCLOUD_TOKEN", "HETZNER_API_TOKEN", "TAILSCALE_OAUTH_CLIENT_SECRET"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("IMAGEKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    settings._file.cache_clear()
    yield monkeypatch
    settings._file.cache_clear()
