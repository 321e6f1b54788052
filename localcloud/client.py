"""The local cloud's one public module: start it on demand, find its endpoint and token, stop,
inspect and reset it, and what a client needs of it besides the Hetzner API (the request
count, a server's CPU time, the Tailscale stand-in's credentials, the apt source line guests install it and Node.js
from, and Node.js of a major in that repository).

imagekit reaches the local cloud through this module only (an import-linter contract checks
it), and it imports nothing beyond the standard library, so that the toolkit works without
the local cloud's web stack installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import apilock, environment
from .paths import (  # noqa: F401 (ULA_PREFIX: for imagekit)
    DEFAULT_API_PORT,
    HOST_ADDRESS,
    HOST_ADDRESS6,
    ULA_PREFIX,
    Layout,
    layout,
)


def guest_apt_source(ipv4: bool = True) -> str:
    """The apt source line guests install the Tailscale STAND-IN, and Node.js (the official binaries, see
    node_package), with: the local cloud's own repository, on the bridge's IPv6 address for an IPv6-only guest."""
    host = HOST_ADDRESS if ipv4 else f"[{HOST_ADDRESS6}]"
    return f"deb [trusted=yes] http://{host}:{DEFAULT_API_PORT}/apt ./"
START_TIMEOUT = float(os.environ.get("IMAGEKIT_LOCALCLOUD_START_TIMEOUT", "900"))  # a cold base-image build
NODE_TIMEOUT = 900  # seconds to download and package a Node.js release (~50 MB) on a slow line


class LocalCloudError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    endpoint: str
    token: str

    @property
    def base(self) -> str:
        return self.endpoint.removesuffix("/v1")

    def admin(self, method: str, path: str, body=None, timeout: float = 120) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")


def _pid(L: Layout) -> int | None:
    """The running API process from the pid file, if that pid really is one (pids get reused)."""
    try:
        pid = int(L.pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"\0-m\0localcloud\0" in cmdline else None


def current(L: Layout | None = None) -> Endpoint | None:
    """The running local cloud's endpoint and token, or None when it is not up."""
    L = L or layout()
    if _pid(L) is None or not L.endpoint_file.exists():
        return None
    ep = Endpoint(L.endpoint_file.read_text().strip(), L.token_file.read_text().strip())
    try:
        ep.admin("GET", "/_admin/health")
    except (urllib.error.URLError, OSError):
        return None
    return ep


def up(progress=print) -> Endpoint:
    """Start the local cloud (if needed) and return once its API answers."""
    L = layout()
    if ep := current(L):
        return ep
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise LocalCloudError(f"the local cloud needs {', '.join(missing)}, which are not installed: "
                              "pip install 'imagekit[localcloud]', or set HCLOUD_TOKEN to use Hetzner")
    if os.geteuid() != 0:
        raise LocalCloudError("the local cloud runs real machines and needs root: run as root (sudo invoke cloud-up)")
    L.root.mkdir(parents=True, exist_ok=True)
    L.root.chmod(0o700)  # state.json holds user data; only root may read it
    proc = None
    if apilock.held(L):  # an API process lives but does not answer yet (building its image): never a second one
        progress(f"the local cloud is already starting (it holds {L.lock_file}); waiting for it")
    else:
        progress(f"starting the local cloud (state in {L.root}; log {L.api_log})")
        with open(L.api_log, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "localcloud"], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=environment.package_root(), env=environment.clean(os.environ))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            if proc.returncode != apilock.ALREADY_RUNNING:
                tail = L.api_log.read_text(errors="replace")[-3000:]
                raise LocalCloudError(f"the local cloud failed to start (exit {proc.returncode}); log tail:\n{tail}")
            proc = None  # another up() started one just before: wait for that one
        if ep := current(L):
            return ep
        if proc is None and not apilock.held(L):
            raise LocalCloudError(f"the local cloud's API process ended before it answered; see {L.api_log}")
        time.sleep(0.5)
    if proc is not None:
        proc.terminate()
    raise LocalCloudError(f"the local cloud did not answer within {START_TIMEOUT:.0f} s; see {L.api_log}")


def down(timeout: float = 60) -> bool:
    """Stop the API and its guests; state stays on disk. Returns False if it was not running."""
    L = layout()
    pid = _pid(L)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pid(L) != pid:  # gone (a zombie's command line is empty)
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


def status() -> dict:
    L = layout()
    ep = current(L)
    if ep is None:
        return {"running": False, "state_dir": str(L.root)}
    health = ep.admin("GET", "/_admin/health")
    ts = ep.admin("GET", "/_admin/tailscale")
    return {
        "running": True, "endpoint": ep.endpoint, "token": ep.token, "state_dir": str(L.root),
        "btrfs": health["btrfs"], "servers": health["servers"], **_arm(health),
        "tailscale_standin_api": ts["api"],
        "tailscale_standin_oauth_client_id": ts["oauth_client"]["client_id"],
        "tailscale_standin_oauth_client_secret": ts["oauth_client"]["client_secret"],
    }


def _arm(health: dict) -> dict:
    """Whether arm servers run here, and why not (``arm``: ready, offered (its image built at first use), building,
    or unavailable)."""
    arch = health.get("architectures") or {"arm": "unknown", "arm_reason": "an older local cloud: restart it"}
    return {"arm": arch["arm"] + (f" ({arch['arm_reason']})" if arch.get("arm_reason") else "")}


def running() -> Endpoint:
    """The running local cloud's endpoint; an error that says how to start it when it is not up."""
    ep = current()
    if ep is None:
        raise LocalCloudError("the local cloud is not running: start it with `invoke cloud-up`")
    return ep


def reset() -> dict:
    return running().admin("POST", "/_admin/reset")


def node_package(major: int) -> dict:
    """Make the local apt repository hold Node.js ``major`` before a guest installs ``nodejs`` from it:
    the newest release, packaged by the local cloud from the official binaries on the npm registry (the
    local cloud's stand-in for NodeSource's repository). Returns ``{"package", "major", "version"}``."""
    try:
        return running().admin("PUT", f"/_admin/node/{major}", timeout=NODE_TIMEOUT)
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read() or b"{}").get("error") or {}
        hint = ("; a local cloud started before it served Node.js must be restarted: invoke cloud-down && "
                "invoke cloud-up") if error.get("code") == "not_found" else ""
        raise LocalCloudError(f"the local cloud cannot serve Node.js {major}: "
                              f"{error.get('message') or exc.reason}{hint}") from None


def api_requests(ep: Endpoint) -> int:
    """How many Hetzner API requests the local cloud has served so far (its request log)."""
    return ep.admin("GET", "/_admin/requests?since=1000000000")["total"]


def server_cpu_seconds(ep: Endpoint, server_id: int) -> float | None:
    """CPU-seconds the server's machine has spent since it last started (None when it is off or its CPU time
    cannot be counted on this host)."""
    return ep.admin("GET", f"/_admin/servers/{int(server_id)}/cpu")["cpu_seconds"]


def tailscale_standin(ep: Endpoint) -> dict:
    """The Tailscale stand-in's API URL and OAuth client: ``{"api", "client_id", "client_secret"}``."""
    ts = ep.admin("GET", "/_admin/tailscale")
    return {"api": ts["api"], **ts["oauth_client"]}


def busybox_image(folder: Path, reference: str) -> Path:
    """A `docker save` archive of ``reference`` (Debian's busybox-static), written in ``folder``: an image to bake
    where no registry is reachable (the bench's; the tests' session snapshot)."""
    from .host.dockerarchive import busybox_binary, write

    return write(folder / "image.tar", reference, busybox_binary(folder / "deb"))
