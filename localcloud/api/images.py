"""``/v1/images``: the system images and snapshots; update, delete, change protection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from .jsonbody import body_of
from .listing import find, listing
from .update import update

SORT = ("id", "name", "description", "created")
FILTERS = {
    "name": lambda i, v: i["name"] in v,
    "type": lambda i, v: i["type"] in v,
    "status": lambda i, v: i["status"] in v,
    "architecture": lambda i, v: i["architecture"] in v,
    "bound_to": lambda i, v: str(i["bound_to"]) in v,
}


def _description(value: Any) -> dict:
    if not isinstance(value, str):
        raise invalid_input("description", "description must be a string")
    return {"description": value}


def _type(value: Any) -> dict:
    """``"snapshot"`` turns a backup into a snapshot of its own; other values change nothing, as on Hetzner."""
    return {"type": "snapshot", "bound_to": None} if value == "snapshot" else {}


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/images")
    def list_images(request: Request):
        include_deprecated = request.query_params.get("include_deprecated", "false") == "true"
        items = [i for i in cloud.images() if include_deprecated or not i["deprecated"]]
        return listing(request, "images", items, sort_fields=SORT, filters=FILTERS)

    @api.get("/v1/images/{ident}")
    def get_image(ident: int):
        return {"image": find(cloud.images(), ident, "image")}

    @api.put("/v1/images/{ident}")
    async def update_image(ident: int, request: Request):
        body = await body_of(request)
        return {"image": update(cloud, "images", ident, "image", body, name=None,
                                fields={"description": _description, "type": _type})}

    @api.delete("/v1/images/{ident}", status_code=204)
    def delete_image(ident: int):
        delete(cloud, ident)
        return Response(status_code=204)

    @api.post("/v1/images/{ident}/actions/change_protection", status_code=201)
    async def image_protection(ident: int, request: Request):
        body = await body_of(request)
        image = cloud.get("images", ident, "image")
        if "delete" in body:
            if not isinstance(body["delete"], bool):
                raise invalid_input("delete", "delete must be a boolean")
            image["protection"]["delete"] = body["delete"]
        cloud.store.save()
        return {"action": cloud.new_action("change_protection", [("image", ident)], status="success")}

    return api


def delete(cloud: Cloud, iid: int) -> None:
    image = cloud.get("images", iid, "image")
    if image["protection"]["delete"]:
        raise APIError("protected", "image is protected against deletion; change its protection first")
    if image["status"] == "creating":
        raise APIError("locked", "image is still being created")
    cloud.storage.delete(cloud.layout.snapshots / str(iid))
    with cloud.store.lock:
        cloud.store["images"].pop(iid, None)
        cloud.store.save()
