"""The local cloud's process: prepare the host, then serve the API until SIGTERM.

Run by ``invoke cloud-up`` as ``python -m localcloud``. It listens on loopback
(for clients on this host) and on the bridge's IPv4 and IPv6 addresses (for guests: the Tailscale
stand-in and the apt repository of the stand-in and Node.js), each with its own connection caps
(``listeners``). One process per local cloud: it holds ``apilock`` for its life.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket

import uvicorn
from fastapi.staticfiles import StaticFiles

from . import apilock, environment
from .api import firewalls, listeners
from .api.admin import node_router
from .api.app import create_app
from .api.middleware import new_token
from .engine.architectures import READY, Architectures
from .engine.cloud import Cloud
from .engine.faults import Faults
from .guests import bridgefilter, confinement, netlinks
from .host import archimage, baseimage, binfmt, hostfirewall, hostnet, nodejs, privatenet
from .host.dhcp import Dhcp
from .host.storage import Storage
from .metadata.service import MetadataService
from .paths import DEFAULT_API_PORT, HOST_ADDRESS, HOST_ADDRESS6, layout
from .state.durable import write_atomic
from .state.store import StateError
from .tailscale import api as tailscale_api
from .tailscale.package import build_apt_repo
from .tailscale.tailnet import TailscaleStandIn

log = logging.getLogger("localcloud")


def read_or_create_token(path) -> str:
    if path.exists():
        return path.read_text().strip()
    token = new_token()
    write_atomic(path, token)
    return token


def login_server(port: int, address: str = HOST_ADDRESS) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/tailscale"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    environment.scrub()
    L = layout()
    L.root.mkdir(parents=True, exist_ok=True)
    L.root.chmod(0o700)  # state.json holds user data; only root may read it
    try:
        lock = apilock.hold(L)  # before anything touches the host: resume() would kill a live API's guests
    except apilock.AlreadyRunning as exc:
        log.error("%s; not starting a second one", exc)
        raise SystemExit(apilock.ALREADY_RUNNING) from None
    file_limit = listeners.raise_file_limit()
    port = int(os.environ.get("IMAGEKIT_LOCALCLOUD_PORT", DEFAULT_API_PORT))
    storage = Storage(L)
    storage.ensure_pool()
    hostnet.ensure_bridge()
    confinement.host_ready()
    ports = bridgefilter.Ports()
    ports.reset()
    bridgefilter.filter_bridged_traffic()
    hostnet.ensure_mirror()
    baseimage.ensure_base_image(L, storage)
    emulation = binfmt.Aarch64Handler()
    architectures = Architectures(emulation.enable(), lambda: archimage.ensure_arm_image(L, storage),
                                  built=archimage.built(L))
    standin = TailscaleStandIn(L.root / "tailscale.json")
    build_apt_repo(L.apt_repo, login_server(port), login_server(port, HOST_ADDRESS6))
    arm64 = archimage.DEBIAN_ARCH["arm"]
    node = nodejs.NodeForArchitectures(nodejs.NodePackages(L.apt_repo, L.node_tarballs),
                                       [nodejs.NodePackages(L.apt_repo, L.node_tarballs, arm64)],
                                       runs=lambda arch: arch != arm64 or architectures.arm == READY)
    dhcp = Dhcp()
    dhcp.start()
    metadata = MetadataService(lambda sid: cloud.metadata_of(sid))
    try:
        cloud = Cloud(L, storage, Faults(L.faults_file), filter_guests=hostfirewall.enforce, ports=ports,
                      links=netlinks.PrivateLinks(privatenet.Namespaces(L)), metadata=metadata, dhcp=dhcp,
                      architectures=architectures)
    except StateError as exc:
        dhcp.stop()
        emulation.disable()
        raise SystemExit(f"localcloud: {exc}") from None
    firewalls.repair_stored_rules(cloud)
    cloud.resume()
    rate_limit = int(os.environ.get("IMAGEKIT_LOCALCLOUD_RATE_LIMIT", "3600"))
    enforce = os.environ.get("IMAGEKIT_LOCALCLOUD_ENFORCE_RATE_LIMIT", "") == "1"

    def extra(app):
        app.include_router(tailscale_api.router(standin), prefix="/tailscale")
        app.include_router(node_router(node))
        app.mount("/apt", StaticFiles(directory=L.apt_repo), name="apt")
        app.state.on_reset = standin.reset

        @app.get("/_admin/tailscale")
        def tailscale_client():
            return {"oauth_client": standin.oauth_client(), "api": f"http://127.0.0.1:{port}/tailscale/api/v2"}

    app = create_app(cloud, read_or_create_token(L.token_file), rate_limit=rate_limit,
                     enforce_rate_limit=enforce, extra=extra)
    guest_addresses = [HOST_ADDRESS, HOST_ADDRESS6]
    sockets = [listen(address, port) for address in (listeners.OPERATOR, *guest_addresses)]
    server = _Server(uvicorn_config(app, listeners.policies(guest_addresses, file_limit)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    write_atomic(L.pid_file, str(os.getpid()), 0o644)  # whole or not at all: up() polls both files
    write_atomic(L.endpoint_file, f"http://127.0.0.1:{port}/v1", 0o644)
    try:
        server.run(sockets=sockets)
    finally:
        log.info("stopping guests")
        cloud.shutdown_all()
        cloud.networks.close()
        cloud.store.save()
        dhcp.stop()
        archimage.stop_build(L)
        emulation.disable()
        L.pid_file.unlink(missing_ok=True)
        lock.close()


def uvicorn_config(app, listener_policies: dict[str, listeners.Policy] | None = None) -> uvicorn.Config:
    """Idle keep-alive connections on loopback stay open for minutes, as Hetzner's do: clients (the SDK through
    requests' pool) reuse them after pauses longer than uvicorn's 5 s default, and a connection the
    server closes just as a client reuses it surfaces as ConnectionResetError in the client. Without
    ``listener_policies``, the operator's policy on loopback (the in-process tests' server)."""
    return uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=listeners.KEEP_ALIVE,
                          http=listeners.protocol(listener_policies or listeners.policies([])),
                          backlog=listeners.BACKLOG)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its shutdown, which would kill us before the guests are
    stopped; we handle the signals ourselves instead."""

    def capture_signals(self):
        return contextlib.nullcontext()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn. TCP_NODELAY is inherited by accepted connections: without it,
    uvicorn's two writes per response (head, body) meet the client's delayed ACK, and every request
    on a reused keep-alive connection waits ~40 ms."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(listeners.BACKLOG)
    return sock
