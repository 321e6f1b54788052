"""``/v1/primary_ips``: create, list, get, update (name, labels, ``auto_delete``), delete, and the actions assign,
unassign, change_dns_ptr and change_protection, checked as Hetzner checks them (a server must be off to get or lose
one; one of each type per server; delete only once unassigned). The records and addresses are the engine's
(``engine/primaryips``)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone

from fastapi import APIRouter, Request, Response

from ..engine import catalog, primaryips
from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from . import labels
from .jsonbody import body_of
from .listing import BY_NAME, listing
from .update import update
from .views import primary_ip_json

MUST_UNASSIGN_FROM = datetime(2026, 5, 1, tzinfo=timezone.utc)  # Hetzner's date: no automatic unassign on delete


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/primary_ips")
    def list_primary_ips(request: Request):
        items = [primary_ip_json(p) for p in list(cloud.store["primary_ips"].values())]
        return listing(request, "primary_ips", items, sort_fields=("id", "created"),
                       filters={**BY_NAME, "ip": lambda i, v: i["ip"] in v})

    @api.post("/v1/primary_ips", status_code=201)
    async def create_primary_ip(request: Request):
        record, action = create(cloud, await body_of(request))
        return {"primary_ip": primary_ip_json(record), "action": action}

    @api.get("/v1/primary_ips/{ident}")
    def get_primary_ip(ident: int):
        return {"primary_ip": primary_ip_json(cloud.get("primary_ips", ident, "primary IP"))}

    @api.put("/v1/primary_ips/{ident}")
    async def update_primary_ip(ident: int, request: Request):
        body = await body_of(request)
        return {"primary_ip": primary_ip_json(update(cloud, "primary_ips", ident, "primary IP", body,
                                                       fields={"auto_delete": _auto_delete}))}

    @api.delete("/v1/primary_ips/{ident}", status_code=204)
    def delete_primary_ip(ident: int):
        record = cloud.get("primary_ips", ident, "primary IP")
        with cloud.store.lock:
            if record["protection"]["delete"]:
                raise APIError("protected", "primary IP is protected against deletion; change its protection first")
            if record["assignee_id"] is not None:
                if datetime.now(timezone.utc) >= MUST_UNASSIGN_FROM:
                    raise APIError("must_be_unassigned", "primary IP is assigned to a server; unassign it first")
                primaryips.unassign(cloud.get("servers", record["assignee_id"], "server"), record)
            cloud.store["primary_ips"].pop(ident)
            cloud.store.save()
        return Response(status_code=204)

    @api.post("/v1/primary_ips/{ident}/actions/assign", status_code=201)
    async def assign(ident: int, request: Request):
        body = await body_of(request)
        with cloud.store.lock:
            record = cloud.get("primary_ips", ident, "primary IP")
            server = _assignee(cloud, body)
            _stopped(server)
            primaryips.assign(server, record)
            cloud.store.save()
            return {"action": _done(cloud, "assign_primary_ip", record, server)}

    @api.post("/v1/primary_ips/{ident}/actions/unassign", status_code=201)
    def unassign(ident: int):
        with cloud.store.lock:
            record = cloud.get("primary_ips", ident, "primary IP")
            if record["assignee_id"] is None:
                raise APIError("invalid_input", "primary IP is not assigned to a server")
            server = cloud.get("servers", record["assignee_id"], "server")
            _stopped(server)
            primaryips.unassign(server, record)
            cloud.store.save()
            return {"action": _done(cloud, "unassign_primary_ip", record, server)}

    @api.post("/v1/primary_ips/{ident}/actions/change_dns_ptr", status_code=201)
    async def change_dns_ptr(ident: int, request: Request):
        body = await body_of(request)
        with cloud.store.lock:
            record = cloud.get("primary_ips", ident, "primary IP")
            ip, ptr = _dns_ptr(record, body)
            record["dns_ptr"] = [e for e in record["dns_ptr"] if e["ip"] != ip]
            if ptr is not None:
                record["dns_ptr"].append({"ip": ip, "dns_ptr": ptr})
            cloud.store.save()
            return {"action": _done(cloud, "change_dns_ptr", record)}

    @api.post("/v1/primary_ips/{ident}/actions/change_protection", status_code=201)
    async def change_protection(ident: int, request: Request):
        body = await body_of(request)
        record = cloud.get("primary_ips", ident, "primary IP")
        if not isinstance(body.get("delete"), bool):
            raise invalid_input("delete", "delete must be a boolean")
        with cloud.store.lock:
            record["protection"]["delete"] = body["delete"]
            cloud.store.save()
            return {"action": _done(cloud, "change_protection", record)}

    return api


def create(cloud: Cloud, body: dict) -> tuple[dict, dict | None]:
    name, kind = body.get("name"), body.get("type")
    if not isinstance(name, str) or not name.strip():
        raise invalid_input("name", "name is required")
    if not isinstance(kind, str) or kind not in primaryips.FIELD:
        raise invalid_input("type", "type must be ipv4 or ipv6")
    if body.get("assignee_type", "server") != "server":
        raise invalid_input("assignee_type", "assignee_type must be server")
    auto_delete = _auto_delete(body.get("auto_delete", False))["auto_delete"]
    lab = labels.validate(body.get("labels"))
    with cloud.store.lock:
        cloud.check_name_free("primary_ips", name, "primary IP")
        server = _assignee(cloud, body) if body.get("assignee_id") is not None else None
        if server is not None:
            _stopped(server)
            if server.get(primaryips.FIELD[kind][0]):
                raise APIError(f"server_has_{kind}", f"server {server['id']} already has an {kind} address")
            location = server["location"]
        else:
            location = _location(cloud, body)
        record = primaryips.new(cloud.store, kind, location, name=name, auto_delete=auto_delete, labels=lab)
        if server is not None:
            primaryips.assign(server, record)
        cloud.store.save()
        action = _done(cloud, "create_primary_ip", record, server)
    return record, action


def _location(cloud: Cloud, body: dict) -> str:
    if body.get("location") is not None:
        return cloud.resolve(body["location"], catalog.LOCATIONS, "location", "location")["name"]
    if body.get("datacenter") is not None:
        return cloud.resolve(body["datacenter"], catalog.DATACENTERS, "datacenter", "datacenter")["location"]
    raise invalid_input("location", "location (or assignee_id) is required")


def _assignee(cloud: Cloud, body: dict) -> dict:
    if body.get("assignee_type", "server") != "server":
        raise invalid_input("assignee_type", "assignee_type must be server")
    ident = body.get("assignee_id")
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise invalid_input("assignee_id", "assignee_id must be a server id")
    return cloud.get("servers", ident, "server")


def _stopped(server: dict) -> None:
    if server["status"] != "off":
        raise APIError("server_not_stopped", f"server {server['id']} is {server['status']}; power it off first",
                       status=422)


def _auto_delete(value) -> dict:
    if not isinstance(value, bool):
        raise invalid_input("auto_delete", "auto_delete must be a boolean")
    return {"auto_delete": value}


def _dns_ptr(record: dict, body: dict) -> tuple[str, str | None]:
    ip, ptr = body.get("ip"), body.get("dns_ptr")
    if ptr is not None and (not isinstance(ptr, str) or not ptr.strip()):
        raise invalid_input("dns_ptr", "dns_ptr must be a hostname, or null to reset it")
    try:
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else None
    except ValueError:
        address = None
    if address is None or address not in ipaddress.ip_network(record["ip"]):
        raise invalid_input("ip", f"ip must be {record['ip']}" if record["type"] == "ipv4"
                            else f"ip must be an address of {record['ip']}")
    return str(address), ptr


def _done(cloud: Cloud, command: str, record: dict, server: dict | None = None) -> dict:
    resources = [("primary_ip", record["id"])] + ([("server", server["id"])] if server else [])
    return cloud.new_action(command, resources, status="success")
