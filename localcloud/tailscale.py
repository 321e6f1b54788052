"""The local cloud's stand-in for Tailscale: control API, client package, apt repository.

Tailscale's real service cannot be reached from here, so the local cloud serves a small
stand-in that follows the shapes of Tailscale's public API v2 (OAuth client credentials,
auth keys, devices) and ships a ``tailscale`` Debian package whose client enrols against
it. The stand-in creates no WireGuard tunnel; it only records enrolment, which is what
provisioning and its tests need to check. It is named as a stand-in everywhere it shows.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import ipaddress
import json
import os
import secrets
import string
import subprocess
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Callable

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

TAILNET_NAME = "standin.ts.net"
PACKAGE_VERSION = "1.76.1~standin1"
TOKEN_LIFETIME = 3600
DEFAULT_KEY_EXPIRY = 90 * 24 * 3600  # Tailscale's default and maximum
_ADDRESS_BASE = ipaddress.IPv4Address("100.64.0.0")
_ALNUM = string.ascii_letters + string.digits


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of secrets that also accepts non-ASCII input."""
    return secrets.compare_digest(a.encode(), b.encode())


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StandInError(Exception):
    """An API error, rendered as Tailscale does: ``{"message": ...}`` with a status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class TailscaleStandIn:
    """Tailnet state of the stand-in (OAuth client, tokens, auth keys, devices), kept as JSON."""

    def __init__(self, state_path: Path, *, clock: Callable[[], float] = time.time):
        self.state_path = Path(state_path)
        self._clock = clock
        self._lock = threading.RLock()
        if self.state_path.exists():
            self._state = json.loads(self.state_path.read_text())
        else:
            client_id = "k" + _rand(12)
            self._state = {
                "oauth_client": {
                    "client_id": client_id,
                    "client_secret": f"tskey-client-{client_id}-{_rand(32)}",
                },
                "tokens": {},
                "keys": {},
                "devices": {},
                "next_address": 1,
            }
            self._save()

    def _save(self) -> None:
        """Write atomically with mode 0600: the file holds the OAuth secret and auth keys."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._state, f, indent=1)
        os.replace(tmp, self.state_path)

    def oauth_client(self) -> dict:
        return dict(self._state["oauth_client"])

    def reset(self) -> None:
        """Forget all auth keys and devices; the OAuth client (configured elsewhere) stays."""
        with self._lock:
            self._state.update(keys={}, devices={}, next_address=1)
            self._save()

    # --- OAuth ---------------------------------------------------------------

    def issue_token(self, client_id: str, client_secret: str, grant_type: str, scope: str) -> dict:
        client = self._state["oauth_client"]
        if grant_type != "client_credentials":
            raise StandInError(400, f"unsupported grant_type {grant_type!r}; use client_credentials")
        if not (_same(client_id, client["client_id"]) and _same(client_secret, client["client_secret"])):
            raise StandInError(401, "invalid OAuth client credentials (Tailscale stand-in)")
        with self._lock:
            now = self._clock()
            tokens = {t: v for t, v in self._state["tokens"].items() if v["expires"] > now}
            token = "tskey-api-" + _rand(40)
            tokens[token] = {"expires": now + TOKEN_LIFETIME, "scope": scope or "all"}
            self._state["tokens"] = tokens
            self._save()
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME, "scope": scope or "all"}

    def check_token(self, token: str) -> None:
        with self._lock:
            entry = self._state["tokens"].get(token)
        if entry is None or entry["expires"] <= self._clock():
            raise StandInError(401, "API token invalid or expired (Tailscale stand-in); "
                                    "get one from /api/v2/oauth/token")

    # --- auth keys -----------------------------------------------------------

    def create_key(self, create: dict, expiry_seconds: int, description: str) -> dict:
        bad = [t for t in create["tags"] if not t.startswith("tag:")]
        if bad:
            raise StandInError(400, f"tags must start with 'tag:': {bad}")
        if expiry_seconds < 0 or expiry_seconds > DEFAULT_KEY_EXPIRY:
            raise StandInError(400, f"expirySeconds must be between 0 and {DEFAULT_KEY_EXPIRY}")
        with self._lock:
            now = self._clock()
            key_id = "k" + _rand(12)
            rec = {
                "id": key_id,
                "secret": f"tskey-auth-{key_id}-{_rand(32)}",
                "created": now,
                "expires": now + (expiry_seconds or DEFAULT_KEY_EXPIRY),
                "revoked": None,
                "uses": 0,
                "description": description,
                "create": create,
            }
            self._state["keys"][key_id] = rec
            self._save()
            return dict(self._key_view(rec), key=rec["secret"])

    def _key_view(self, rec: dict) -> dict:
        used_up = not rec["create"]["reusable"] and rec["uses"] > 0
        view = {
            "id": rec["id"],
            "created": _iso(rec["created"]),
            "expires": _iso(rec["expires"]),
            "capabilities": {"devices": {"create": copy.deepcopy(rec["create"])}},
            "description": rec["description"],
            "invalid": bool(rec["revoked"]) or used_up or rec["expires"] <= self._clock(),
        }
        if rec["revoked"]:
            view["revoked"] = _iso(rec["revoked"])
        return view

    def _key(self, key_id: str) -> dict:
        rec = self._state["keys"].get(key_id)
        if rec is None:
            raise StandInError(404, f"key {key_id!r} not found")
        return rec

    def list_keys(self) -> list[dict]:
        with self._lock:
            return [{"id": k} for k in self._state["keys"]]

    def get_key(self, key_id: str) -> dict:
        with self._lock:
            return self._key_view(self._key(key_id))

    def delete_key(self, key_id: str) -> None:
        """Revoke, as Tailscale does: the key stays visible but can no longer be used."""
        with self._lock:
            rec = self._key(key_id)
            rec["revoked"] = rec["revoked"] or self._clock()
            self._save()

    # --- devices -------------------------------------------------------------

    def _device_view(self, dev: dict) -> dict:
        return {
            "id": dev["id"],
            "nodeId": dev["nodeId"],
            "name": dev["name"],
            "hostname": dev["hostname"],
            "addresses": [dev["address"]],
            "tags": list(dev["tags"]),
            "authorized": dev["authorized"],
            "user": "tagged-devices" if dev["tags"] else "standin@" + TAILNET_NAME,
            "created": _iso(dev["created"]),
            "lastSeen": _iso(dev["lastSeen"]),
            "expires": _iso(dev["expires"]) if dev["expires"] else "0001-01-01T00:00:00Z",
            "os": dev["os"],
            "clientVersion": dev["clientVersion"],
            "keyExpiryDisabled": dev["expires"] is None,
            "ephemeral": dev["ephemeral"],
            "updateAvailable": False,
            "isExternal": False,
            "blocksIncomingConnections": False,
        }

    def _device(self, ident: str) -> dict:
        """Find a device by its ``id`` or ``nodeId``; the API accepts either."""
        for dev in self._state["devices"].values():
            if ident in (dev["id"], dev["nodeId"]):
                return dev
        raise StandInError(404, f"device {ident!r} not found")

    def list_devices(self) -> list[dict]:
        with self._lock:
            return [self._device_view(d) for d in self._state["devices"].values()]

    def get_device(self, ident: str) -> dict:
        with self._lock:
            return self._device_view(self._device(ident))

    def delete_device(self, ident: str) -> None:
        with self._lock:
            del self._state["devices"][self._device(ident)["id"]]
            self._save()

    # --- stand-in client protocol --------------------------------------------

    def register(self, authkey: str, hostname: str, os_name: str, client_version: str,
                 advertise_tags: list[str]) -> dict:
        """Enrol a device with an auth key, enforcing expiry, revocation and single use."""
        with self._lock:
            now = self._clock()
            rec = next((k for k in self._state["keys"].values()
                        if _same(k["secret"], authkey)), None)
            if rec is None:
                raise StandInError(401, "invalid key: auth key not found (Tailscale stand-in)")
            if rec["revoked"]:
                raise StandInError(401, f"invalid key: auth key {rec['id']} has been revoked")
            if rec["expires"] <= now:
                raise StandInError(401, f"invalid key: auth key {rec['id']} expired at {_iso(rec['expires'])}")
            if not rec["create"]["reusable"] and rec["uses"]:
                raise StandInError(401, f"invalid key: auth key {rec['id']} is single-use and was already used")
            key_tags = rec["create"]["tags"]
            extra = sorted(set(advertise_tags) - set(key_tags))
            if extra:
                raise StandInError(403, f"requested tags {extra} are not permitted by auth key {rec['id']} "
                                        f"(it grants {key_tags})")
            rec["uses"] += 1
            n = self._state["next_address"]
            while (_ADDRESS_BASE + n).packed[-1] in (0, 255):
                n += 1
            self._state["next_address"] = n + 1
            dev_id = str(secrets.randbelow(10**15) + 10**15)
            dev = {
                "id": dev_id,
                "nodeId": "n" + _rand(12) + "CNTRL",
                "name": self._unique_name(hostname),
                "hostname": hostname,
                "address": str(_ADDRESS_BASE + n),
                "tags": advertise_tags or list(key_tags),
                "authorized": rec["create"]["preauthorized"],
                "ephemeral": rec["create"]["ephemeral"],
                "created": now,
                "lastSeen": now,
                # Tagged devices have key expiry disabled, as on Tailscale.
                "expires": None if key_tags else now + 180 * 24 * 3600,
                "os": os_name,
                "clientVersion": client_version,
                "loggedOut": False,
            }
            self._state["devices"][dev_id] = dev
            self._save()
            return {"node_id": dev["nodeId"], "device_id": dev_id, "address": dev["address"],
                    "name": dev["name"], "authorized": dev["authorized"], "tailnet_name": TAILNET_NAME}

    def _unique_name(self, hostname: str) -> str:
        """MagicDNS names are unique; Tailscale appends -1, -2, ... on collisions."""
        taken = {d["name"] for d in self._state["devices"].values()}
        name, i = f"{hostname}.{TAILNET_NAME}", 0
        while name in taken:
            i += 1
            name = f"{hostname}-{i}.{TAILNET_NAME}"
        return name

    def logout(self, node_id: str) -> None:
        """Log a node out; ephemeral nodes disappear, others stay with an expired key."""
        with self._lock:
            dev = self._device(node_id)
            if dev["ephemeral"]:
                del self._state["devices"][dev["id"]]
            else:
                dev.update(loggedOut=True, expires=self._clock())
            self._save()

    def ping(self, node_id: str) -> None:
        with self._lock:
            dev = self._device(node_id)
            if dev["loggedOut"]:
                raise StandInError(404, f"node {node_id!r} is logged out")
            dev["lastSeen"] = self._clock()
            self._save()


# --- HTTP API ------------------------------------------------------------------


class _Route(APIRoute):
    """Render stand-in and validation errors as Tailscale's ``{"message": ...}`` objects."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except StandInError as exc:
                return JSONResponse({"message": exc.message}, status_code=exc.status)
            except RequestValidationError as exc:
                msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                return JSONResponse({"message": msgs}, status_code=400)

        return route_handler


class _DeviceCreate(BaseModel):
    reusable: bool = False
    ephemeral: bool = False
    preauthorized: bool = False
    tags: list[str] = []


class _Devices(BaseModel):
    create: _DeviceCreate = _DeviceCreate()


class _Capabilities(BaseModel):
    devices: _Devices = _Devices()


class _KeyRequest(BaseModel):
    capabilities: _Capabilities = _Capabilities()
    expirySeconds: int = 0
    description: str = ""


class _Register(BaseModel):
    authkey: str
    hostname: str
    os: str = "linux"
    client_version: str = ""
    advertise_tags: list[str] = []


class _Node(BaseModel):
    node_id: str


def router(standin: TailscaleStandIn) -> APIRouter:
    """Routes of the stand-in; mount with ``prefix="/tailscale"``."""
    r = APIRouter(route_class=_Route)

    def auth(authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise StandInError(401, "missing 'Authorization: Bearer <access token>' (Tailscale stand-in)")
        standin.check_token(token.strip())

    def tailnet_ok(tailnet: str) -> None:
        if tailnet not in ("-", TAILNET_NAME):
            raise StandInError(404, f"tailnet {tailnet!r} not found; the stand-in has one tailnet, "
                                    f"'-' or {TAILNET_NAME!r}")

    @r.post("/api/v2/oauth/token")
    async def oauth_token(request: Request):
        # Parsed by hand: form-encoded, and FastAPI's Form() needs python-multipart.
        form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
        return standin.issue_token(form.get("client_id", ""), form.get("client_secret", ""),
                                   form.get("grant_type", ""), form.get("scope", ""))

    @r.post("/api/v2/tailnet/{tailnet}/keys")
    def create_key(tailnet: str, body: _KeyRequest, authorization: str | None = Header(None)):
        auth(authorization)
        tailnet_ok(tailnet)
        return standin.create_key(body.capabilities.devices.create.model_dump(),
                                  body.expirySeconds, body.description)

    @r.get("/api/v2/tailnet/{tailnet}/keys")
    def list_keys(tailnet: str, authorization: str | None = Header(None)):
        auth(authorization)
        tailnet_ok(tailnet)
        return {"keys": standin.list_keys()}

    @r.get("/api/v2/tailnet/{tailnet}/keys/{key_id}")
    def get_key(tailnet: str, key_id: str, authorization: str | None = Header(None)):
        auth(authorization)
        tailnet_ok(tailnet)
        return standin.get_key(key_id)

    @r.delete("/api/v2/tailnet/{tailnet}/keys/{key_id}")
    def delete_key(tailnet: str, key_id: str, authorization: str | None = Header(None)):
        auth(authorization)
        tailnet_ok(tailnet)
        standin.delete_key(key_id)
        return Response(status_code=200)

    @r.get("/api/v2/tailnet/{tailnet}/devices")
    def list_devices(tailnet: str, authorization: str | None = Header(None)):
        auth(authorization)
        tailnet_ok(tailnet)
        return {"devices": standin.list_devices()}

    @r.get("/api/v2/device/{device_id}")
    def get_device(device_id: str, authorization: str | None = Header(None)):
        auth(authorization)
        return standin.get_device(device_id)

    @r.delete("/api/v2/device/{device_id}")
    def delete_device(device_id: str, authorization: str | None = Header(None)):
        auth(authorization)
        standin.delete_device(device_id)
        return Response(status_code=200)

    @r.post("/standin/register")
    def register(body: _Register):
        return standin.register(body.authkey, body.hostname, body.os, body.client_version,
                                body.advertise_tags)

    @r.post("/standin/logout")
    def logout(body: _Node):
        standin.logout(body.node_id)
        return {}

    @r.post("/standin/ping")
    def ping(body: _Node):
        standin.ping(body.node_id)
        return {}

    return r


# --- the stand-in client package ---------------------------------------------------

_CLI = r'''#!/usr/bin/python3
"""tailscale: the imagekit local cloud's STAND-IN for the Tailscale CLI.

Not the real Tailscale client: it enrols this machine with the local cloud's Tailscale
stand-in (an auth-key login that is recorded there) and creates no WireGuard tunnel.
"""
import argparse
import json
import os
import socket
import sys
import urllib.error
import urllib.request

VERSION = "@VERSION@"
LOGIN_SERVER = @LOGIN_SERVER@
STATE = os.environ.get("TAILSCALE_STANDIN_STATE", "/var/lib/tailscale/standin-state.json")


class Failure(Exception):
    pass


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(state):
    os.makedirs(os.path.dirname(STATE), mode=0o700, exist_ok=True)
    tmp = STATE + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, STATE)


def call(server, path, body):
    req = urllib.request.Request(server.rstrip("/") + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            msg = json.load(exc).get("message", "")
        except ValueError:
            msg = ""
        raise Failure(f"backend error: {msg or exc} (Tailscale stand-in at {server})") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Failure(f"cannot reach the Tailscale stand-in at {server}: {exc}") from exc


def backend_state(state):
    if not state.get("node_id"):
        return "NeedsLogin"
    return "Running" if state.get("authorized") else "NeedsMachineAuth"


def read_key(value):
    """``file:/path`` keeps the key off command lines, as with the real client."""
    if value.startswith("file:"):
        with open(value[5:]) as f:
            return f.read().strip()
    return value


def cmd_up(args):
    state = load()
    if state.get("node_id") and not args.force_reauth:
        return  # already logged in: like tailscale, the auth key is not used again
    if not args.authkey:
        raise Failure("the Tailscale stand-in supports only auth-key login: pass --authkey=KEY "
                      "or --authkey=file:/path")
    try:
        key = read_key(args.authkey)
    except OSError as exc:
        raise Failure(f"cannot read auth key: {exc}") from exc
    tags = [t for t in args.advertise_tags.split(",") if t]
    hostname = args.hostname or socket.gethostname()
    reply = call(args.login_server, "/standin/register", {
        "authkey": key, "hostname": hostname, "os": "linux",
        "client_version": VERSION, "advertise_tags": tags})
    if state.get("node_id"):
        try:
            call(state["login_server"], "/standin/logout", {"node_id": state["node_id"]})
        except Failure:
            pass  # the old node is gone already or its server is; the new login stands
    save({"login_server": args.login_server, "hostname": hostname, "tags": tags, **reply})


def cmd_status(args):
    state = load()
    ips = [state["address"]] if state.get("address") else []
    if args.json:
        print(json.dumps({
            "Version": VERSION,
            "StandIn": True,
            "BackendState": backend_state(state),
            "TailscaleIPs": ips,
            "Self": {
                "ID": state.get("node_id", ""),
                "HostName": state.get("hostname") or socket.gethostname(),
                "DNSName": state["name"] + "." if state.get("name") else "",
                "OS": "linux",
                "TailscaleIPs": ips,
                "Tags": state.get("tags", []),
                "Online": bool(ips),
            },
            "MagicDNSSuffix": state.get("tailnet_name", ""),
            "CurrentTailnet": {"Name": state["tailnet_name"]} if state.get("tailnet_name") else None,
            "Peer": {},
            "Health": ["imagekit stand-in: no WireGuard tunnel, no peers"],
        }, indent=2))
        return 0
    if not state.get("node_id"):
        print("Logged out. (imagekit Tailscale stand-in: log in with tailscale up --authkey=...)")
        return 1
    print(f"{state['address']}  {state['hostname']}  {'tagged-devices' if state.get('tags') else '-'}  linux  -")
    print(f"# imagekit stand-in for Tailscale ({backend_state(state)}); no tunnel, peers not shown")
    return 0


def cmd_logout(args):
    state = load()
    if state.get("node_id"):
        try:
            call(state["login_server"], "/standin/logout", {"node_id": state["node_id"]})
        except Failure as exc:
            if "not found" not in str(exc):
                raise
    save({})


def cmd_ip(args):
    state = load()
    if not state.get("address"):
        raise Failure(f"no current Tailscale IPs; state: {backend_state(state)} (imagekit stand-in)")
    if args.six:
        raise Failure("the Tailscale stand-in assigns no IPv6 address")
    print(state["address"])


def cmd_version(args):
    print(f"{VERSION} (imagekit stand-in)")


def parser():
    p = argparse.ArgumentParser(prog="tailscale", description=(
        "imagekit local cloud stand-in for the Tailscale CLI (not the real client; no tunnel)"))
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="log in with an auth key")
    up.add_argument("--authkey", "--auth-key", dest="authkey", default="",
                    help="auth key, or file:/path to read it from a file")
    up.add_argument("--hostname", default="")
    up.add_argument("--advertise-tags", default="", help="comma-separated tags, within the key's tags")
    up.add_argument("--login-server", default=LOGIN_SERVER, help=f"default {LOGIN_SERVER}")
    up.add_argument("--force-reauth", nargs="?", const=True, default=False,
                    type=lambda v: v.lower() in ("true", "1"), help="log in again with a new node")
    for flag in ("--reset", "--ssh", "--accept-dns", "--accept-routes", "--shields-up"):
        up.add_argument(flag, nargs="?", const="true", help="accepted; no effect in the stand-in")
    up.add_argument("--timeout", help="accepted; no effect in the stand-in")
    up.set_defaults(func=cmd_up)
    status = sub.add_parser("status", help="show login state")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("logout", help="log out; ephemeral nodes are removed").set_defaults(func=cmd_logout)
    ip = sub.add_parser("ip", help="print this node's Tailscale address")
    ip.add_argument("-4", dest="four", action="store_true")
    ip.add_argument("-6", dest="six", action="store_true")
    ip.set_defaults(func=cmd_ip)
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    return p


def main():
    args = parser().parse_args()
    try:
        sys.exit(args.func(args) or 0)
    except Failure as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
'''

_DAEMON = r'''#!/usr/bin/python3
"""tailscaled: the imagekit local cloud's STAND-IN for the Tailscale daemon.

Not the real daemon: it creates no tunnel; it only reports this node as seen to the
local cloud's Tailscale stand-in while the node is logged in.
"""
import json
import os
import time
import urllib.request

STATE = os.environ.get("TAILSCALE_STANDIN_STATE", "/var/lib/tailscale/standin-state.json")

print("tailscaled @VERSION@ (imagekit stand-in): no WireGuard tunnel is created", flush=True)
while True:
    try:
        with open(STATE) as f:
            state = json.load(f)
        if state.get("node_id"):
            req = urllib.request.Request(
                state["login_server"].rstrip("/") + "/standin/ping",
                data=json.dumps({"node_id": state["node_id"]}).encode(),
                headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).close()
    except (OSError, ValueError, KeyError):
        pass  # not logged in yet, or the stand-in is unreachable: try again later
    time.sleep(30)
'''

_UNIT = """[Unit]
Description=Tailscale node agent (imagekit local cloud stand-in, not the real tailscaled)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/sbin/tailscaled
Restart=on-failure
StateDirectory=tailscale
StateDirectoryMode=0700

[Install]
WantedBy=multi-user.target
"""

_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    systemctl enable tailscaled.service >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        systemctl restart tailscaled.service || true
    fi
fi
"""

_PRERM = """#!/bin/sh
set -e
if [ "$1" = remove ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop tailscaled.service || true
    fi
    systemctl disable tailscaled.service >/dev/null 2>&1 || true
fi
"""

_DESCRIPTION = """imagekit local cloud stand-in for Tailscale (NOT the real Tailscale client)
 This package replaces Tailscale on machines of the imagekit local cloud, where
 Tailscale's service cannot be reached. Its tailscale CLI and tailscaled daemon
 enrol the machine with the local cloud's Tailscale stand-in using an auth key;
 they create no WireGuard tunnel. Do not use it outside the imagekit local cloud."""


def _package_files(login_server: str) -> dict[str, tuple[str, int]]:
    """Path in the package -> (content, mode)."""
    if urllib.parse.urlsplit(login_server).scheme not in ("http", "https"):
        raise ValueError(f"login server must be an http(s) URL, got {login_server!r}")
    cli = _CLI.replace("@VERSION@", PACKAGE_VERSION).replace("@LOGIN_SERVER@", repr(login_server))
    return {
        "usr/bin/tailscale": (cli, 0o755),
        "usr/sbin/tailscaled": (_DAEMON.replace("@VERSION@", PACKAGE_VERSION), 0o755),
        "lib/systemd/system/tailscaled.service": (_UNIT, 0o644),
        "DEBIAN/postinst": (_POSTINST, 0o755),
        "DEBIAN/prerm": (_PRERM, 0o755),
    }


def _control(installed_kib: int, extra: str = "") -> str:
    """The control stanza; ``extra`` adds the apt index fields (Filename, Size, hashes)."""
    return (f"Package: tailscale\nVersion: {PACKAGE_VERSION}\nArchitecture: all\n"
            f"Maintainer: imagekit local cloud <standin@localcloud.invalid>\n"
            f"Installed-Size: {installed_kib}\nDepends: python3\nSection: net\nPriority: optional\n"
            f"{extra}Description: {_DESCRIPTION}\n")


def build_apt_repo(repo_dir: Path, login_server: str) -> Path:
    """Build the stand-in ``tailscale`` .deb and a flat apt repository around it.

    Guests use ``deb [trusted=yes] http://HOST:PORT/apt ./``. Rebuilt only when the
    package content (including the baked-in login server) changes.
    """
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    files = _package_files(login_server)
    fingerprint = hashlib.sha256(json.dumps([PACKAGE_VERSION, files], sort_keys=True).encode()).hexdigest()
    deb_name = f"tailscale_{PACKAGE_VERSION}_all.deb"
    stamp = repo_dir / ".standin-build"
    if ((repo_dir / deb_name).exists() and (repo_dir / "Release").exists()
            and stamp.exists() and stamp.read_text() == fingerprint):
        return repo_dir

    payload = sum(len(c.encode()) for rel, (c, _) in files.items() if not rel.startswith("DEBIAN/"))
    installed_kib = -(-payload // 1024)
    with tempfile.TemporaryDirectory(dir=repo_dir) as tmp:
        root = Path(tmp) / "pkg"
        for rel, (content, mode) in [*files.items(), ("DEBIAN/control", (_control(installed_kib), 0o644))]:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(mode)
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o755)  # dpkg-deb insists; mkdtemp makes 0700
        built = Path(tmp) / deb_name
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(built)],
                       check=True, capture_output=True, text=True)
        for old in repo_dir.glob("tailscale_*.deb"):
            old.unlink()
        os.replace(built, repo_dir / deb_name)

    data = (repo_dir / deb_name).read_bytes()
    packages = (_control(installed_kib, f"Filename: {deb_name}\nSize: {len(data)}\n"
                                        f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
                                        f"SHA256: {hashlib.sha256(data).hexdigest()}\n") + "\n").encode()
    packages_gz = gzip.compress(packages, mtime=0)
    indexes = (("Packages", packages), ("Packages.gz", packages_gz))
    release = (
        "Origin: imagekit-localcloud\nLabel: Tailscale stand-in (imagekit local cloud)\n"
        "Suite: standin\nCodename: standin\n"
        f"Date: {formatdate(usegmt=True)}\n"
        "Description: imagekit local cloud stand-in for Tailscale's apt repository\n"
        "MD5Sum:\n"
        + "".join(f" {hashlib.md5(b).hexdigest()} {len(b)} {n}\n" for n, b in indexes)
        + "SHA256:\n"
        + "".join(f" {hashlib.sha256(b).hexdigest()} {len(b)} {n}\n" for n, b in indexes)
    )
    (repo_dir / "Packages").write_bytes(packages)
    (repo_dir / "Packages.gz").write_bytes(packages_gz)
    (repo_dir / "Release").write_text(release)
    stamp.write_text(fingerprint)
    return repo_dir
