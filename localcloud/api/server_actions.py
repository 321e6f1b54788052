"""``POST /v1/servers/{id}/actions/{command}``: what a server's actions (power, protection, snapshot,
rebuild) do to its machine and records."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request

from ..engine import catalog
from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from ..state.store import now
from . import labels, placement_groups, server_networks
from .jsonbody import body_of
from .serverlock import locked_action as _locked_action
from .servers import check_architecture
from .validation import USER_DATA_LIMIT


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/servers/{ident}/actions/{command}", status_code=201)
    async def server_action(ident: int, command: str, request: Request):
        result = run(cloud, ident, command, await body_of(request))
        return result if "action" in result else {"action": result}

    return api


def run(cloud: Cloud, sid: int, command: str, body: dict) -> dict:
    """POST /servers/{id}/actions/{command}: refused with `locked` while another action holds the server."""
    server = cloud.get("servers", sid, "server")
    handler = ACTIONS.get(command)
    if handler is None:
        raise APIError("not_found", f"action '{command}' is not supported by the local cloud", status=404)
    with cloud.store.lock:
        if server["locked"] or server["status"] in ("initializing", "deleting"):
            raise APIError("locked", "server is locked by another action; wait for it to finish")
        return handler(cloud, server, body or {})


def poweron(cloud: Cloud, server: dict, body: dict) -> dict:
    def work(progress):
        if not cloud.machine(server).running:
            server["status"] = "starting"
            cloud.boot(server, wait=True)
    return _locked_action(cloud, server, "start_server", work)


def poweroff(cloud: Cloud, server: dict, body: dict) -> dict:
    def work(progress):
        server["power"] = "off"
        cloud.machine(server).poweroff()
        server["status"] = "off"
    return _locked_action(cloud, server, "stop_server", work)


def shutdown(cloud: Cloud, server: dict, body: dict) -> dict:
    # Like Hetzner: the action only sends the ACPI signal and finishes before the guest is off.
    machine = cloud.machine(server)
    if machine.running:
        server["status"] = "stopping"
        machine.shutdown()
    return _locked_action(cloud, server, "shutdown_server", lambda progress: None)


def reboot(cloud: Cloud, server: dict, body: dict) -> dict:
    return _locked_action(cloud, server, "reboot_server", lambda p: cloud.machine(server).reboot())


def reset(cloud: Cloud, server: dict, body: dict) -> dict:
    return _locked_action(cloud, server, "reset_server", lambda p: cloud.machine(server).reset())


def change_protection(cloud: Cloud, server: dict, body: dict) -> dict:
    for key in ("delete", "rebuild"):
        if key in body:
            if not isinstance(body[key], bool):
                raise invalid_input(key, f"{key} must be a boolean")
            server["protection"][key] = body[key]
    cloud.store.save()
    return cloud.new_action("change_protection", [("server", server["id"])], status="success")


def create_image(cloud: Cloud, server: dict, body: dict) -> dict:
    kind = body.get("type", "snapshot")
    if kind not in ("snapshot", "backup"):
        raise invalid_input("type", "type must be snapshot or backup")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_input("description", "description must be a string")
    lab = labels.validate(body.get("labels"))
    stype = catalog.SERVER_TYPE_BY_NAME[server["server_type"]]
    source = cloud.get_image_of(server) or catalog.SYSTEM_IMAGES[0]
    iid = cloud.store.new_id("images")
    image = {
        "id": iid, "type": kind, "status": "creating", "name": None,
        "description": description or f"{server['name']}-{now()}", "image_size": None,
        "disk_size": stype["disk"],
        "created": now(), "created_from": {"id": server["id"], "name": server["name"]},
        "bound_to": server["id"] if kind == "backup" else None, "os_flavor": source["os_flavor"],
        "os_version": source["os_version"], "rapid_deploy": False, "protection": {"delete": False},
        "deprecated": None, "deleted": None, "labels": lab,
        "architecture": stype["architecture"],  # the machine's, as on Hetzner (its source image may be gone)
    }
    cloud.store["images"][iid] = image
    path = cloud.layout.snapshots / str(iid)

    def work(progress):
        cloud.storage.clone(cloud.disk(server), path, readonly=True)
        progress(80)
        image["image_size"] = round(cloud.storage.size_bytes(path) / 1024**3, 3)
        image["status"] = "available"
        cloud.store.save()

    def failed():
        cloud.storage.delete(path)
        with cloud.store.lock:
            cloud.store["images"].pop(iid, None)
            cloud.store.save()

    action = _locked_action(cloud, server, "create_image", work, extra=[("image", iid)], on_error=failed)
    return {"image": image, "action": action}


def rebuild(cloud: Cloud, server: dict, body: dict) -> dict:
    if server["protection"]["rebuild"]:
        raise APIError("protected", "server is protected against rebuild; change its protection first")
    image = cloud.resolve(body.get("image"), [i for i in cloud.images() if i["status"] == "available"],
                          "image", "image")
    check_architecture(image, catalog.SERVER_TYPE_BY_NAME[server["server_type"]])
    user_data = body.get("user_data")  # as on Hetzner: new user data for the rebuilt disk, else the server's own
    if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > USER_DATA_LIMIT):
        raise invalid_input("user_data", f"user_data must be a string of at most {USER_DATA_LIMIT} bytes")

    def work(progress):
        root = cloud.image_root(image)  # the arm image's first use builds it: while the server still runs
        machine = cloud.machine(server)
        was_on = machine.running
        server["status"] = "rebuilding"
        machine.poweroff()
        cloud.storage.delete(cloud.disk(server))
        cloud.storage.clone(root, cloud.disk(server))
        server["image_id"] = image["id"]
        server["instance"] = secrets.token_hex(8)
        if user_data is not None:
            server["user_data"] = user_data
        progress(70)
        if was_on:
            cloud.boot(server, wait=True)
        else:
            server["status"] = "off"
        cloud.store.save()

    action = _locked_action(cloud, server, "rebuild_server", work)
    return {"action": action, "root_password": None}


ACTIONS = {
    "poweron": poweron,
    "poweroff": poweroff,
    "shutdown": shutdown,
    "reboot": reboot,
    "reset": reset,
    "change_protection": change_protection,
    "create_image": create_image,
    "rebuild": rebuild,
    **server_networks.ACTIONS,
    **placement_groups.SERVER_ACTIONS,
}
