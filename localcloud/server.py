"""The local cloud's process: prepare the host, then serve the API until SIGTERM.

Run by ``invoke cloud-up`` as ``python -m localcloud``. It listens on loopback
(for clients on this host) and on the bridge address (for guests: the Tailscale stand-in
and its apt repository).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket

import uvicorn
from fastapi.staticfiles import StaticFiles

from . import baseimage, hostnet, tailscale
from .app import create_app, new_token
from .cloud import Cloud
from .faults import Faults
from .paths import DEFAULT_API_PORT, HOST_ADDRESS, layout
from .storage import Storage

log = logging.getLogger("localcloud")


def read_or_create_token(path) -> str:
    if path.exists():
        return path.read_text().strip()
    token = new_token()
    path.write_text(token)
    path.chmod(0o600)
    return token


def login_server(port: int) -> str:
    return f"http://{HOST_ADDRESS}:{port}/tailscale"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    L = layout()
    L.root.mkdir(parents=True, exist_ok=True)
    L.root.chmod(0o700)  # state.json holds user data; only root may read it
    port = int(os.environ.get("IMAGEKIT_LOCALCLOUD_PORT", DEFAULT_API_PORT))
    storage = Storage(L)
    storage.ensure_pool()
    hostnet.ensure_bridge()
    hostnet.ensure_mirror()
    baseimage.ensure_base_image(L, storage)
    standin = tailscale.TailscaleStandIn(L.root / "tailscale.json")
    tailscale.build_apt_repo(L.apt_repo, login_server(port))
    cloud = Cloud(L, storage, Faults(L.faults_file))
    cloud.resume()
    rate_limit = int(os.environ.get("IMAGEKIT_LOCALCLOUD_RATE_LIMIT", "3600"))
    enforce = os.environ.get("IMAGEKIT_LOCALCLOUD_ENFORCE_RATE_LIMIT", "") == "1"

    def extra(app):
        app.include_router(tailscale.router(standin), prefix="/tailscale")
        app.mount("/apt", StaticFiles(directory=L.apt_repo), name="apt")
        app.state.on_reset = standin.reset

        @app.get("/_admin/tailscale")
        def tailscale_client():
            return {"oauth_client": standin.oauth_client(), "api": f"http://127.0.0.1:{port}/tailscale/api/v2"}

    app = create_app(cloud, read_or_create_token(L.token_file), rate_limit=rate_limit,
                     enforce_rate_limit=enforce, extra=extra)
    sockets = [_listen("127.0.0.1", port), _listen(HOST_ADDRESS, port)]
    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    L.pid_file.write_text(str(os.getpid()))
    L.endpoint_file.write_text(f"http://127.0.0.1:{port}/v1")
    try:
        server.run(sockets=sockets)
    finally:
        log.info("stopping guests")
        cloud.shutdown_all()
        cloud.store.save()
        L.pid_file.unlink(missing_ok=True)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its shutdown, which would kill us before the guests are
    stopped; we handle the signals ourselves instead."""

    def capture_signals(self):
        return contextlib.nullcontext()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock
