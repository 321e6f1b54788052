"""The stand-in's tailnet (OAuth client, tokens, auth keys, devices) and Tailscale's rules for them."""

from __future__ import annotations

import copy
import ipaddress
import json
import secrets
import string
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..state.durable import write_atomic

TAILNET_NAME = "standin.ts.net"
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
        """Mode 0600: the file holds the OAuth secret and auth keys."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_path, json.dumps(self._state, indent=1))

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
            "connectedToControl": not dev["loggedOut"],  # the stand-in counts a node online while logged in
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
