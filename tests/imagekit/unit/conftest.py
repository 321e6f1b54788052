"""An in-process local cloud API for checks that need the API but neither root nor machines: the
input checks of build and provision, which must fail before anything is created, and what
provision and gc do with the records they find. The Tailscale stand-in likewise."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import uvicorn

from imagekit import settings
from imagekit.target import Target


@contextlib.contextmanager
def serving(app):
    """``app`` served by uvicorn in a thread on a free port of 127.0.0.1; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="session")
def api(tmp_path_factory):
    from localcloud.api.app import create_app
    from localcloud.engine.cloud import Cloud
    from localcloud.engine.faults import Faults
    from localcloud.host.storage import Storage
    from localcloud.paths import Layout

    layout = Layout(tmp_path_factory.mktemp("localcloud"))
    cloud = Cloud(layout, Storage(layout), Faults())
    token = "unit-test-token"
    with serving(create_app(cloud, token)) as port:
        yield SimpleNamespace(target=Target(f"http://127.0.0.1:{port}/v1", token, local=False), cloud=cloud)


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    """The local cloud's Tailscale stand-in in this process: its API URL, OAuth client and state."""
    from fastapi import FastAPI

    from localcloud.tailscale import api as tailscale_api
    from localcloud.tailscale.tailnet import TailscaleStandIn

    state = TailscaleStandIn(tmp_path_factory.mktemp("tailscale") / "tailscale.json")
    app = FastAPI()
    app.include_router(tailscale_api.router(state), prefix="/tailscale")
    with serving(app) as port:
        yield SimpleNamespace(api=f"http://127.0.0.1:{port}/tailscale/api/v2", state=state, **state.oauth_client())


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


@pytest.fixture(autouse=True)
def node_packages(monkeypatch):
    """A build on the local cloud asks it for its Node.js major (localcloud.client.node_package); unit tests
    never reach a running local cloud: the majors asked for are recorded here instead."""
    from localcloud import client as localcloud

    asked = []
    monkeypatch.setattr(localcloud, "node_package", lambda major: asked.append(major) or {
        "package": "nodejs", "major": major, "version": f"{major}.0.0-1imagekit"})
    return asked
