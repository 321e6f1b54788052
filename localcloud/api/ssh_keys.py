"""``/v1/ssh_keys``: OpenSSH public keys, unique by name and by fingerprint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from ..state.store import now
from . import labels
from .jsonbody import body_of
from .listing import BY_NAME, listing
from .update import update
from .validation import ssh_fingerprint


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/ssh_keys")
    def list_ssh_keys(request: Request):
        return listing(request, "ssh_keys", list(cloud.store["ssh_keys"].values()), sort_fields=("id", "name"),
                       filters={**BY_NAME, "fingerprint": lambda i, v: i["fingerprint"] in v})

    @api.post("/v1/ssh_keys", status_code=201)
    async def create_ssh_key(request: Request):
        return {"ssh_key": create(cloud, await body_of(request))}

    @api.get("/v1/ssh_keys/{ident}")
    def get_ssh_key(ident: int):
        return {"ssh_key": cloud.get("ssh_keys", ident, "SSH key")}

    @api.put("/v1/ssh_keys/{ident}")
    async def update_ssh_key(ident: int, request: Request):
        return {"ssh_key": update(cloud, "ssh_keys", ident, "SSH key", await body_of(request))}

    @api.delete("/v1/ssh_keys/{ident}", status_code=204)
    def delete_ssh_key(ident: int):
        cloud.get("ssh_keys", ident, "SSH key")
        with cloud.store.lock:
            cloud.store["ssh_keys"].pop(ident)
            cloud.store.save()
        return Response(status_code=204)

    return api


def create(cloud: Cloud, body: dict) -> dict:
    name, public_key = body.get("name"), body.get("public_key")
    if not isinstance(public_key, str):
        raise invalid_input("public_key", "public_key must be an OpenSSH public key string")
    public_key = public_key.strip()
    if not isinstance(name, str) or not name.strip():
        raise invalid_input("name", "name is required")
    fingerprint = ssh_fingerprint(public_key)
    lab = labels.validate(body.get("labels"))
    with cloud.store.lock:
        cloud.check_name_free("ssh_keys", name, "SSH key")
        for key in cloud.store["ssh_keys"].values():
            if key["fingerprint"] == fingerprint:
                raise APIError("uniqueness_error", "SSH key with the same fingerprint already exists",
                               details={"fields": [{"name": "public_key"}]})
        key = {"id": cloud.store.new_id("ssh_keys"), "name": name, "fingerprint": fingerprint,
               "public_key": public_key, "labels": lab, "created": now()}
        cloud.store["ssh_keys"][key["id"]] = key
        cloud.store.save()
    return key
