"""``/v1/actions`` and each resource's actions (``/v1/{servers,images,firewalls,networks,primary_ips}/actions``,
``…/{id}/actions``).

Included before the resources' own routers: ``/v1/servers/actions`` is no server id.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..engine.cloud import Cloud
from .listing import Filter, find, listing

SORT = ("id", "command", "status", "started", "finished")
FILTERS: dict[str, Filter] = {"id": lambda a, v: str(a["id"]) in v, "status": lambda a, v: a["status"] in v}
KINDS = (("server", "servers"), ("image", "images"), ("firewall", "firewalls"), ("network", "networks"),
         ("primary_ip", "primary_ips"))


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/actions")
    def list_actions(request: Request):
        return listing(request, "actions", cloud.actions_of(None), sort_fields=SORT, filters=FILTERS)

    @api.get("/v1/actions/{ident}")
    def get_action(ident: int):
        return {"action": cloud.get("actions", ident, "action")}

    for kind, plural in KINDS:
        _of_kind(api, cloud, kind, plural)
    return api


def _of_kind(api: APIRouter, cloud: Cloud, kind: str, plural: str) -> None:
    @api.get(f"/v1/{plural}/actions", name=f"list_{kind}_actions")
    def list_kind_actions(request: Request):
        return listing(request, "actions", cloud.actions_of(kind), sort_fields=SORT, filters=FILTERS)

    @api.get(f"/v1/{plural}/actions/{{action_id}}", name=f"get_{kind}_action")
    def get_kind_action(action_id: int):
        return {"action": find(cloud.actions_of(kind), action_id, "action")}

    @api.get(f"/v1/{plural}/{{ident}}/actions", name=f"list_actions_of_{kind}")
    def list_actions_of(ident: int, request: Request):
        return listing(request, "actions", cloud.actions_of(kind, ident), sort_fields=SORT, filters=FILTERS)

    @api.get(f"/v1/{plural}/{{ident}}/actions/{{action_id}}", name=f"get_action_of_{kind}")
    def get_action_of(ident: int, action_id: int):
        return {"action": find(cloud.actions_of(kind, ident), action_id, "action")}
