"""Primary IPs: a server's public IPv4 address and IPv6 /64 as records of their own, as on Hetzner.

A server created with IPv4 (IPv6) gets a new Primary IP of that type (``auto_delete``: deleted with the server)
unless ``public_net`` names one to use; one without ``auto_delete`` outlives its server, unassigned, and can be
assigned to another (powered-off) server of its location. IPv4 addresses come from the local cloud's /24
(``.10``-``.249``), IPv6 /64s from its ULA /48 (``paths.ULA_PREFIX``). A server record carries its addresses
(``address``, ``ipv6``) and the ids of their records (``ipv4_id``, ``ipv6_id``); this module keeps both sides in
step. Callers hold the store's lock.
"""

from __future__ import annotations

from typing import Any

from ..errors import APIError
from ..paths import SUBNET_PREFIX, ULA_PREFIX
from ..state.store import Store, now

FIELD = {"ipv4": ("ipv4_id", "address"), "ipv6": ("ipv6_id", "ipv6")}  # type -> the server's (id, address) keys


def allocate(store: Store, kind: str) -> str:
    used = {p["ip"] for p in store["primary_ips"].values()}
    candidates = ([f"{SUBNET_PREFIX}.{n}" for n in range(10, 250)] if kind == "ipv4"
                  else (f"{ULA_PREFIX}:{n:x}::/64" for n in range(1, 0x10000)))
    for ip in candidates:
        if ip not in used:
            return ip
    raise APIError("resource_limit_exceeded", f"the local cloud has no free {kind} address left")


def default_dns_ptr(kind: str, ip: str) -> list[dict]:
    return [{"ip": ip, "dns_ptr": f"static.{ip}.local"}] if kind == "ipv4" else []


def new(store: Store, kind: str, location: str, *, name: str | None = None, auto_delete: bool = False,
        labels: dict | None = None) -> dict:
    pid = store.new_id("primary_ips")
    ip = allocate(store, kind)
    record: dict[str, Any] = {
        "id": pid, "name": name or f"primary_ip-{pid}", "type": kind, "ip": ip, "location": location,
        "assignee_id": None, "assignee_type": "server", "auto_delete": auto_delete, "labels": labels or {},
        "created": now(), "dns_ptr": default_dns_ptr(kind, ip), "protection": {"delete": False}, "blocked": False,
    }
    store["primary_ips"][pid] = record
    return record


def assign(server: dict, record: dict) -> None:
    id_key, address_key = FIELD[record["type"]]
    if server.get(id_key):
        raise APIError(f"server_has_{record['type']}", f"server {server['id']} already has an {record['type']} address")
    if record["assignee_id"] is not None:
        raise APIError("primary_ip_already_assigned", f"primary IP {record['id']} is assigned to server "
                       f"{record['assignee_id']}; unassign it first")
    if record["location"] != server["location"]:
        raise APIError("invalid_input", f"primary IP {record['id']} is in {record['location']}, the server in "
                       f"{server['location']}: a primary IP is assigned in its own location only")
    record["assignee_id"] = server["id"]
    server[id_key], server[address_key] = record["id"], record["ip"]


def unassign(server: dict, record: dict) -> None:
    id_key, address_key = FIELD[record["type"]]
    record["assignee_id"] = None
    if server.get(id_key) == record["id"]:
        server[id_key], server[address_key] = None, None


def release(store: Store, server: dict) -> None:
    """The server goes: its Primary IPs with ``auto_delete`` go with it, the others stay, unassigned."""
    for kind in FIELD:
        record = store["primary_ips"].get(server.get(FIELD[kind][0]) or 0)
        if record is None:
            continue
        unassign(server, record)
        if record["auto_delete"]:
            del store["primary_ips"][record["id"]]


def adopt(store: Store) -> bool:
    """Servers recorded before Primary IPs existed get theirs: their IPv4 address as it was, a new IPv6 /64."""
    changed = False
    for server in store["servers"].values():
        if "ipv4_id" in server:
            continue
        server.update(ipv4_id=None, ipv6_id=None, ipv6=None)
        if server.get("address"):
            record = new(store, "ipv4", server["location"], auto_delete=True)
            record["ip"], record["dns_ptr"] = server["address"], default_dns_ptr("ipv4", server["address"])
            record["assignee_id"], server["ipv4_id"] = server["id"], record["id"]
        assign(server, new(store, "ipv6", server["location"], auto_delete=True))
        changed = True
    return changed
