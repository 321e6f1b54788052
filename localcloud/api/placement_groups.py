"""``/v1/placement_groups`` (type ``spread``) and a server's place in one: given at create, or by the server
actions ``add_to_placement_group`` (the server must be off) and ``remove_from_placement_group``.

On Hetzner a spread group puts each of its servers on another physical host; every guest here shares this one,
so a group is a record with Hetzner's rules: at most 10 servers (the 11th is refused with the code and message
Hetzner answers, ``placement_group_member_limit_reached``, and nothing is created), a server in at most one
group. Deleting a group with servers in it is allowed (Hetzner documents no refusal): they leave it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from ..state.store import now
from . import labels
from .jsonbody import body_of
from .listing import BY_NAME, listing
from .serverlock import locked_action
from .update import update
from .views import placement_group_json

SPREAD_LIMIT = 10
TYPES = ("spread",)


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/placement_groups")
    def list_groups(request: Request):
        items = [placement_group_json(cloud, g) for g in list(cloud.store["placement_groups"].values())]
        return listing(request, "placement_groups", items, sort_fields=("id", "name", "created"),
                       filters={**BY_NAME, "type": lambda g, v: g["type"] in v})

    @api.post("/v1/placement_groups", status_code=201)
    async def create(request: Request):
        return {"placement_group": placement_group_json(cloud, create_group(cloud, await body_of(request))),
                "action": None}

    @api.get("/v1/placement_groups/{ident}")
    def get_group(ident: int):
        return {"placement_group": placement_group_json(cloud, cloud.get("placement_groups", ident,
                                                                         "placement group"))}

    @api.put("/v1/placement_groups/{ident}")
    async def update_group(ident: int, request: Request):
        group = update(cloud, "placement_groups", ident, "placement group", await body_of(request))
        return {"placement_group": placement_group_json(cloud, group)}

    @api.delete("/v1/placement_groups/{ident}", status_code=204)
    def delete(ident: int):
        group = cloud.get("placement_groups", ident, "placement group")
        with cloud.store.lock:
            for server in cloud.store["servers"].values():
                if server["placement_group"] == group["id"]:
                    server["placement_group"] = None
            cloud.store["placement_groups"].pop(group["id"])
            cloud.store.save()
        return Response(status_code=204)

    return api


def create_group(cloud: Cloud, body: dict) -> dict:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_input("name", "name must be a non-empty string")
    if body.get("type") not in TYPES:
        raise invalid_input("type", f"type must be one of {', '.join(TYPES)}")
    lab = labels.validate(body.get("labels"))
    with cloud.store.lock:
        cloud.check_name_free("placement_groups", name, "placement group")
        group = {"id": cloud.store.new_id("placement_groups"), "name": name, "labels": lab, "type": body["type"],
                 "created": now()}
        cloud.store["placement_groups"][group["id"]] = group
        cloud.store.save()
    return group


def of_body(cloud: Cloud, body: dict) -> dict | None:
    """The placement group a server create asks for (``placement_group``: an ID), or None."""
    ident = body.get("placement_group")
    return None if ident is None else cloud.get("placement_groups", ident, "placement group")


def join(cloud: Cloud, server: dict, group: dict | None) -> None:
    """Put the server into ``group`` (the record, not saved), refused as Hetzner refuses an 11th server of a spread
    group. Call with the store's lock held."""
    if group is None:
        return
    members = sum(1 for s in cloud.store["servers"].values() if s["placement_group"] == group["id"])
    if members >= SPREAD_LIMIT:
        raise APIError("placement_group_member_limit_reached",
                       f"placement group with ID {group['id']} contains already {SPREAD_LIMIT} servers")
    server["placement_group"] = group["id"]


def add_to_placement_group(cloud: Cloud, server: dict, body: dict) -> dict:
    if body.get("placement_group") is None:
        raise invalid_input("placement_group", "placement_group (the ID of a placement group) is required")
    group = cloud.get("placement_groups", body["placement_group"], "placement group")
    if server["status"] != "off":
        raise APIError("server_not_stopped", "the server must be off to join a placement group; power it off first")
    if server["placement_group"] is not None:
        raise APIError("already_in_placement_group", f"server is already in placement group "
                                                     f"{server['placement_group']}; remove it first")
    join(cloud, server, group)
    cloud.store.save()
    return locked_action(cloud, server, "add_to_placement_group", lambda p: None)


def remove_from_placement_group(cloud: Cloud, server: dict, body: dict) -> dict:
    server["placement_group"] = None
    cloud.store.save()
    return locked_action(cloud, server, "remove_from_placement_group", lambda p: None)


SERVER_ACTIONS = {"add_to_placement_group": add_to_placement_group,
                  "remove_from_placement_group": remove_from_placement_group}
