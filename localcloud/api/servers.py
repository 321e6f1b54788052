"""``/v1/servers``: creating and deleting servers, input checked as the real API does, then the machine's
lifecycle (the engine's). Their actions (power, snapshot, rebuild) are in ``server_actions``."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Request

from ..engine import catalog
from ..engine.cloud import Cloud
from ..engine.lifecycle import BOOT_TIMEOUT
from ..errors import APIError, invalid_input
from ..state.store import now
from . import labels, placement_groups, publicnet
from .jsonbody import body_of
from .listing import BY_NAME, listing
from .update import HOSTNAME, update
from .validation import USER_DATA_LIMIT, list_field
from .views import server_json


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/servers")
    def list_servers(request: Request):
        items = [server_json(cloud, s) for s in list(cloud.store["servers"].values())]
        return listing(request, "servers", items, sort_fields=("id", "name", "created"),
                       filters={**BY_NAME, "status": lambda i, v: i["status"] in v})

    @api.post("/v1/servers", status_code=201)
    async def create(request: Request):
        result = create_server(cloud, await body_of(request))
        result["server"] = server_json(cloud, result["server"])
        return result

    @api.get("/v1/servers/{ident}")
    def get_server(ident: int):
        return {"server": server_json(cloud, cloud.get("servers", ident, "server"))}

    @api.put("/v1/servers/{ident}")
    async def update_server(ident: int, request: Request):
        body = await body_of(request)
        return {"server": server_json(cloud, update(cloud, "servers", ident, "server", body, name=HOSTNAME))}

    @api.delete("/v1/servers/{ident}")
    def delete(ident: int):
        return {"action": delete_server(cloud, ident)}

    return api


def create_server(cloud: Cloud, body: dict) -> dict:
    name = body.get("name")
    if not HOSTNAME.valid(name):
        raise invalid_input("name", HOSTNAME.message)
    stype = server_type(cloud, body.get("server_type"))
    image = cloud.resolve(body.get("image"), [i for i in cloud.images() if i["status"] == "available"],
                          "image", "image")
    location = _pick_location(cloud, body, stype)
    check_architecture(image, stype)
    dep = stype["deprecation"]
    if dep and dep["unavailable_after"] < now():
        raise invalid_input("server_type", f"server type {stype['name']} is no longer available")
    user_data = body.get("user_data")
    if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > USER_DATA_LIMIT):
        raise invalid_input("user_data", f"user_data must be a string of at most {USER_DATA_LIMIT} bytes")
    keys = [cloud.resolve(k, list(cloud.store["ssh_keys"].values()), "ssh_keys", "SSH key")
            for k in list_field(body, "ssh_keys")]
    firewalls = [cloud.get("firewalls", f.get("firewall") if isinstance(f, dict) else f, "firewall")
                 for f in list_field(body, "firewalls")]
    lab = labels.validate(body.get("labels"))
    networks = [cloud.get("networks", n, "network") for n in list_field(body, "networks")]
    group = placement_groups.of_body(cloud, body)
    start = body.get("start_after_create", True) is not False
    with cloud.store.lock:
        cloud.check_name_free("servers", name, "server")
        net = publicnet.plan(cloud, body, location["name"])
        sid = cloud.store.new_id("servers")
        server = {
            "id": sid, "name": name, "labels": lab, "created": now(), "status": "initializing",
            "server_type": stype["name"], "location": location["name"], "image_id": image["id"],
            "ssh_keys": [k["public_key"] for k in keys], "user_data": user_data,
            "protection": {"delete": False, "rebuild": False},
            "locked": False, "power": "on" if start else "off", "firewalls": [f["id"] for f in firewalls],
            "instance": secrets.token_hex(8), "private_net": [], "placement_group": None,
        }
        placement_groups.join(cloud, server, group)  # these two refuse before the server exists
        for network in networks:
            cloud.networks.attach(server, network)
        publicnet.attach(cloud, server, net)
        cloud.store["servers"][sid] = server
        for fw in firewalls:
            fw.setdefault("applied_to", []).append(sid)
        cloud.store.save()
    if firewalls:
        cloud.enforce_firewalls()
    create = cloud.new_action("create_server", [("server", sid)])
    after = [cloud.new_action("start_server", [("server", sid)])] if start else []
    root_password = None if keys else secrets.token_urlsafe(15)

    def work(progress):
        cloud.storage.clone(cloud.image_root(image), cloud.disk(server))
        progress(50)
        if start:
            server["status"] = "starting"
            cloud.boot(server, wait=True)
        else:
            server["status"] = "off"
        cloud.store.save()

    def failed():
        server["status"] = "off"
        server["power"] = "off"

    cloud.run_action(create, work, on_error=failed, then=after)
    return {"server": server, "action": create, "next_actions": after, "root_password": root_password}


def server_type(cloud: Cloud, value) -> dict:
    """The server type asked for, if this host runs its architecture (arm: ``engine/architectures``)."""
    stype = cloud.resolve(value, catalog.SERVER_TYPES, "server_type", "server type")
    if not cloud.architectures.offers(stype["architecture"]):
        raise invalid_input("server_type", f"server type '{value}' not found ({stype['architecture']} types are "
                                           f"not offered by this local cloud: {cloud.architectures.reason})")
    return stype


def check_architecture(image: dict, stype: dict) -> None:
    """Hetzner's refusal of an image of another architecture (an image given by name is its x86 one there too)."""
    want = stype["architecture"]
    if image["architecture"] != want:
        raise APIError("invalid_input", "image has incompatible architecture", details={"fields": [{
            "name": "image", "messages": [f"image {image['id']} is {image['architecture']}, server type "
                                          f"{stype['name']} is {want}: pick an image of architecture {want} "
                                          f"(GET /v1/images?architecture={want})"]}]})


def _pick_location(cloud: Cloud, body: dict, stype: dict) -> dict:
    if body.get("location") and body.get("datacenter"):
        raise invalid_input("location", "specify either location or datacenter, not both")
    if body.get("datacenter"):
        dc = cloud.resolve(body["datacenter"], catalog.DATACENTERS, "datacenter", "datacenter")
        location = catalog.LOCATION_BY_NAME[dc["location"]]
    elif body.get("location"):
        location = cloud.resolve(body["location"], catalog.LOCATIONS, "location", "location")
    else:
        location = catalog.LOCATION_BY_NAME[stype["locations"][0]["name"]]
    if location["name"] not in {loc["name"] for loc in stype["locations"]}:
        raise APIError("resource_unavailable",
                       f"server type {stype['name']} is not available in {location['name']}; available in: "
                       + ", ".join(loc["name"] for loc in stype["locations"]))
    return location


def delete_server(cloud: Cloud, sid: int) -> dict:
    server = cloud.get("servers", sid, "server")
    if server["protection"]["delete"]:
        raise APIError("protected", "server is protected against deletion; change its protection first")
    with cloud.store.lock:
        if server["status"] == "deleting":
            raise APIError("locked", "server is already being deleted")
        server["status"] = "deleting"
        server["locked"] = True
        cloud.store.save()
    action = cloud.new_action("delete_server", [("server", sid)])

    def work(progress):
        # A server deleted while it is still being created (or powered on) goes once that action
        # is over: otherwise its machine would boot after the delete, an orphan holding its address.
        _await_actions(cloud, sid, action["id"])
        cloud.drop_server(server)

    cloud.run_action(action, work)
    return action


def _await_actions(cloud: Cloud, sid: int, own: int, timeout: float = BOOT_TIMEOUT + 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [a for a in cloud.actions_of("server", sid) if a["id"] != own and a["status"] == "running"]
        if not running:
            return
        time.sleep(0.05)
