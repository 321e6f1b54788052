"""Tailscale's API v2, as far as provisioning needs it: OAuth client → per-deployment auth keys,
and devices (to remove an agent's node when it is deprovisioned, swept or replaced).

On Hetzner this is Tailscale's real API. On the local cloud, unless TAILSCALE_OAUTH_* are
set, it is the local cloud's **Tailscale stand-in** (same API shapes, no tunnels), and every
message says so. Secrets (the OAuth secret, access tokens, auth keys) never appear in errors.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypedDict, overload

import paramiko
from hcloud.servers import BoundServer

from .cloud.api import known
from .errors import ImagekitError
from .host import ssh
from .settings import get as setting
from .target import Target

DEFAULT_API = "https://api.tailscale.com/api/v2"
CLOCK_SLACK = timedelta(seconds=5)  # the cloud's and Tailscale's clocks may differ a little
KEY_EXPIRY = 900  # seconds: long enough for a slow fallback install, useless soon after
HTTP_TIMEOUT = 30
AUTH_KEY_FILE = "/run/imagekit/tailscale-authkey"  # root-only, on the host, only while `tailscale up` reads it
# What an operator does with a key or a device imagekit could not remove (Tailscale has no CLI for it).
REVOKE_BY_HAND = "revoke it in the Tailscale admin console (Settings > Keys); it expires within 15 minutes anyway"
REMOVE_BY_HAND = "remove them in the Tailscale admin console (Machines); ephemeral nodes go once offline"


class TailnetError(ImagekitError):
    """A Tailscale API failure or a missing setting; the message says what to do."""


class Device(TypedDict, total=False):
    """A device of the tailnet, as Tailscale's API lists it (the fields imagekit reads)."""

    id: str
    name: str
    hostname: str
    tags: list[str]
    created: str  # ISO 8601
    connectedToControl: bool


@dataclass(frozen=True)
class Credentials:
    api_url: str
    client_id: str
    client_secret: str
    tags: tuple[str, ...]
    tailnet: str = "-"
    standin: bool = False

    @property
    def what(self) -> str:
        return "the local cloud's Tailscale stand-in" if self.standin else f"Tailscale's API at {self.api_url}"


def tags() -> tuple[str, ...]:
    """The tags every agent node gets (TAILSCALE_TAGS, comma-separated)."""
    found = tuple(t.strip() for t in setting("TAILSCALE_TAGS").split(",") if t.strip())
    bad = [t for t in found if not re.fullmatch(r"tag:[A-Za-z0-9-]+", t)]
    if bad or not found:
        raise TailnetError("TAILSCALE_TAGS must be a comma-separated list of tags like 'tag:agents'; "
                           f"got {bad or '[]'}")
    return found


@overload
def credentials(target: Target, *, required: Literal[True] = ...) -> Credentials: ...


@overload
def credentials(target: Target, *, required: bool) -> Credentials | None: ...


def credentials(target: Target, *, required: bool = True) -> Credentials | None:
    """Credentials from TAILSCALE_OAUTH_CLIENT_ID/_SECRET; the stand-in's on the local cloud when both are unset."""
    cid, secret = setting("TAILSCALE_OAUTH_CLIENT_ID") or "", os.environ.get("TAILSCALE_OAUTH_CLIENT_SECRET", "")
    tags_ = tags()
    api = (setting("TAILSCALE_API_URL") or "").rstrip("/")
    if cid and secret:
        return Credentials(api or DEFAULT_API, cid, secret, tags_, setting("TAILSCALE_TAILNET"))
    if cid or secret:
        missing = "TAILSCALE_OAUTH_CLIENT_SECRET" if cid else "TAILSCALE_OAUTH_CLIENT_ID"
        raise TailnetError(f"{missing} is not set: set both TAILSCALE_OAUTH_CLIENT_ID and "
                           "TAILSCALE_OAUTH_CLIENT_SECRET, or pass --no-tailscale")
    if target.local:
        from localcloud import client as localcloud

        ep = localcloud.current()
        if ep is not None:
            standin = localcloud.tailscale_standin(ep)
            return Credentials(api or standin["api"], standin["client_id"], standin["client_secret"], tags_,
                               standin=True)
    if not required:
        return None
    raise TailnetError("Tailscale credentials are missing: set TAILSCALE_OAUTH_CLIENT_ID and "
                       "TAILSCALE_OAUTH_CLIENT_SECRET (an OAuth client allowed to write auth keys for "
                       f"{','.join(tags_)}), or pass --no-tailscale")


class Tailnet:
    """A small client: one OAuth access token per run, shared by the fleet's threads."""

    def __init__(self, s: Credentials):
        self.s = s
        self._token: str | None = None
        self._lock = threading.Lock()

    def authenticate(self) -> None:
        """Get an access token now, so bad credentials fail before anything is created."""
        with self._lock:
            if self._token is None:
                form = urllib.parse.urlencode({"client_id": self.s.client_id, "client_secret": self.s.client_secret,
                                               "grant_type": "client_credentials"}).encode()
                self._token = self._call("POST", "/oauth/token", form, "application/x-www-form-urlencoded",
                                         auth=False)["access_token"]

    def mint_auth_key(self, description: str) -> tuple[str, str]:
        """A single-use, ephemeral, pre-authorised, tagged auth key that expires soon: (id, secret)."""
        body = {"capabilities": {"devices": {"create": {
                    "reusable": False, "ephemeral": True, "preauthorized": True, "tags": list(self.s.tags)}}},
                "expirySeconds": KEY_EXPIRY, "description": description[:50]}
        key = self._call("POST", f"/tailnet/{self.s.tailnet}/keys", json.dumps(body).encode(), "application/json")
        return key["id"], key["key"]

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/tailnet/{self.s.tailnet}/keys/{key_id}", ok_missing=True)

    def keys(self) -> list[dict[str, Any]]:
        """Every auth key of the tailnet with its state (``invalid`` once used, revoked or expired)."""
        listed = self._call("GET", f"/tailnet/{self.s.tailnet}/keys")["keys"]
        return [self._call("GET", f"/tailnet/{self.s.tailnet}/keys/{k['id']}") for k in listed]

    def devices(self) -> list[Device]:
        devices: list[Device] = self._call("GET", f"/tailnet/{self.s.tailnet}/devices")["devices"]
        return devices

    def delete_device(self, device_id: str) -> None:
        self._call("DELETE", f"/device/{device_id}", ok_missing=True)

    def devices_of(self, hostname: str, since: datetime, devices: list[Device] | None = None,
                   until: datetime | None = None) -> list[Device]:
        """The devices a server enrolled: its hostname, every tag of ours, and created after the server was
        (and before ``until``: a roll's old host, whose replacement enrolled under the same hostname).
        ``devices``: the tailnet's list when the caller has it already (one request for many servers).

        Never by hostname alone: a person's laptop called the same stays."""
        return [d for d in (self.devices() if devices is None else devices) if d.get("hostname") == hostname
                and set(self.s.tags) <= set(d.get("tags") or []) and _created(d) >= since - CLOCK_SLACK
                and (until is None or _created(d) < until)]

    def remove_devices_of(self, server: BoundServer, devices: list[Device] | None = None) -> list[Device]:
        """Delete the devices ``server`` enrolled (``devices_of``); the ones deleted."""
        found = self.devices_of(hostname_of(server), known(server.created, f"server {server.id}'s creation time"),
                                devices)
        for device in found:
            self.delete_device(device["id"])
        return found

    def _call(self, method: str, path: str, data: bytes | None = None, content_type: str | None = None, *,
              auth: bool = True, ok_missing: bool = False) -> dict[str, Any]:
        if auth:
            self.authenticate()
        headers = {"Content-Type": content_type} if content_type else {}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        req = urllib.request.Request(self.s.api_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and ok_missing:
                return {}
            message = _message(exc)
            if exc.code == 401:
                raise TailnetError(f"{self.s.what} rejected the OAuth client (401: {message}): check "
                                   "TAILSCALE_OAUTH_CLIENT_ID and TAILSCALE_OAUTH_CLIENT_SECRET") from None
            raise TailnetError(f"{self.s.what}: {method} {path.split('?')[0]} failed ({exc.code}: {message})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TailnetError(f"{self.s.what} cannot be reached ({getattr(exc, 'reason', exc)}); "
                               "check TAILSCALE_API_URL and the network, or pass --no-tailscale") from None
        found: dict[str, Any] = json.loads(body) if body else {}
        return found


def enrol_over_ssh(conn: paramiko.SSHClient, auth_key: str, hostname: str, tags: tuple[str, ...]) -> None:
    """``tailscale up`` on a running host: the single-use key travels over the SSH channel into a root-only file
    (never a command line, which ``ps`` shows) and is removed whatever happens."""
    code, out, err = ssh.run(conn, f"umask 077 && mkdir -p /run/imagekit && cat > {AUTH_KEY_FILE} && "
                                   f"tailscale up --auth-key=file:{AUTH_KEY_FILE} --hostname={hostname} "
                                   f"--advertise-tags={','.join(tags)}; rc=$?; rm -f {AUTH_KEY_FILE}; exit $rc",
                             stdin=auth_key.encode(), timeout=120)
    if code != 0:
        raise TailnetError(f"tailscale up failed (exit {code}): {(out + err).strip()[-500:]}")


def hostname_of(server: BoundServer) -> str:
    """The Tailscale hostname a server enrols under: an agent's is its agent's name (``agent-id``), also while
    a roll's replacement still carries a temporary server name; anything else's is its server name."""
    return (server.labels or {}).get("agent-id") or known(server.name, f"server {server.id}'s name")


def _created(device: Device) -> datetime:
    try:
        return datetime.fromisoformat(str(device.get("created", "")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)  # unknown: never counted as the server's


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", ""))[:300]
    except (ValueError, OSError, AttributeError):
        return exc.reason or ""


def remove_devices(target: Target, servers: list[BoundServer], progress: Callable[[str], None],
                   api: Tailnet | None = None) -> list[str]:
    """Each server's own devices (``devices_of``), for deprovision, gc and a replaced half-made agent,
    through ``api`` when the caller is signed in already; without credentials it says so and removes nothing."""
    if not servers:
        return []
    if api is None:
        creds = credentials(target, required=False)
        if creds is None:
            progress("Tailscale credentials are not set: the agents' nodes were not removed from the tailnet "
                     "(they are ephemeral and go away on their own once offline)")
            return []
        api = Tailnet(creds)
    listed = api.devices()
    deleted = []
    for server in servers:
        for device in api.remove_devices_of(server, listed):
            deleted.append(device["id"])
            progress(f"[{server.name}] Tailscale device {device.get('name')} removed ({api.s.what})")
    return deleted
