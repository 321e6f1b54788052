"""``/v1/networks``: private networks, their subnets and routes (checked in ``netchecks``), and their actions.

Changes to a network are records first, then the host follows (``engine/networks``: its namespace, gateway,
routes and DHCP). Deleting a network detaches its servers, running ones too, as Hetzner does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from ..state.store import now
from . import labels, netchecks
from .jsonbody import body_of
from .listing import BY_NAME, listing
from .update import update
from .views import network_json


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/networks")
    def list_networks(request: Request):
        items = [network_json(cloud, n) for n in list(cloud.store["networks"].values())]
        return listing(request, "networks", items, sort_fields=("id", "name", "created"), filters=BY_NAME)

    @api.post("/v1/networks", status_code=201)
    async def create(request: Request):
        return {"network": network_json(cloud, create_network(cloud, await body_of(request)))}

    @api.get("/v1/networks/{ident}")
    def get_network(ident: int):
        return {"network": network_json(cloud, cloud.get("networks", ident, "network"))}

    @api.put("/v1/networks/{ident}")
    async def update_network(ident: int, request: Request):
        fields = {"expose_routes_to_vswitch": _flag("expose_routes_to_vswitch")}
        return {"network": network_json(cloud, update(cloud, "networks", ident, "network", await body_of(request),
                                                      fields=fields))}

    @api.delete("/v1/networks/{ident}", status_code=204)
    def delete(ident: int):
        delete_network(cloud, ident)
        return Response(status_code=204)

    for command, change in ACTIONS.items():
        _action(api, cloud, command, change)
    return api


Change = Callable[[Cloud, dict, dict], str]


def _action(api: APIRouter, cloud: Cloud, command: str, change: Change) -> None:
    """``POST /v1/networks/{id}/actions/<command>``: ``change(cloud, network, body)`` edits the record (raising
    before it changes anything) and names the action; the host follows."""

    @api.post(f"/v1/networks/{{ident}}/actions/{command}", status_code=201, name=f"network_{command}")
    async def network_action(ident: int, request: Request):
        body = await body_of(request)
        network = cloud.get("networks", ident, "network")
        with cloud.store.lock:
            name = change(cloud, network, body)
            cloud.store.save()
        action = cloud.new_action(name, [("network", network["id"])])
        cloud.run_action(action, lambda progress: cloud.networks.apply([network["id"]]))
        return {"action": action}


def _flag(field: str) -> Callable[[object], dict]:
    def change(value: object) -> dict:
        if not isinstance(value, bool):
            raise invalid_input(field, f"{field} must be a boolean")
        return {field: value}
    return change


def create_network(cloud: Cloud, body: dict) -> dict:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_input("name", "name must be a non-empty string")
    lab = labels.validate(body.get("labels"))
    expose = _flag("expose_routes_to_vswitch")(body.get("expose_routes_to_vswitch", False))
    network = netchecks.new_network(body)
    with cloud.store.lock:
        cloud.check_name_free("networks", name, "network")
        network.update(id=cloud.store.new_id("networks"), name=name, labels=lab, created=now(),
                       protection={"delete": False}, **expose)
        cloud.store["networks"][network["id"]] = network
        cloud.store.save()
    cloud.networks.apply([network["id"]])
    return network


def delete_network(cloud: Cloud, ident: int) -> None:
    network = cloud.get("networks", ident, "network")
    if network["protection"]["delete"]:
        raise APIError("protected", "network is protected against deletion; change its protection first")
    with cloud.store.lock:
        attached = cloud.networks.attached(network["id"])
        for server, _ in attached:
            cloud.networks.detach(server, network["id"])
        cloud.store["networks"].pop(network["id"])
        cloud.store.save()
    cloud.networks.apply([network["id"]])  # gone: its namespace and the guests' interfaces on it go


def add_subnet(cloud: Cloud, network: dict, body: dict) -> str:
    network["subnets"].append(netchecks.subnet(network, body, "subnet"))
    return "add_subnet"


def delete_subnet(cloud: Cloud, network: dict, body: dict) -> str:
    subnet = next((s for s in network["subnets"] if s["ip_range"] == body.get("ip_range")), None)
    if subnet is None:
        raise invalid_input("ip_range", f"the network has no subnet {body.get('ip_range')!r}")
    inside = ipaddress.ip_network(subnet["ip_range"])
    if any(ipaddress.ip_address(e["ip"]) in inside for _, e in cloud.networks.attached(network["id"])):
        raise APIError("resource_in_use", "servers are attached in this subnet; detach them first")
    network["subnets"].remove(subnet)
    return "delete_subnet"


def add_route(cloud: Cloud, network: dict, body: dict) -> str:
    network["routes"].append(netchecks.route(network, body, "route"))
    return "add_route"


def delete_route(cloud: Cloud, network: dict, body: dict) -> str:
    wanted = {"destination": body.get("destination"), "gateway": body.get("gateway")}
    if wanted not in network["routes"]:
        raise invalid_input("destination", f"the network has no route to {wanted['destination']!r} via "
                                           f"{wanted['gateway']!r}")
    network["routes"].remove(wanted)
    return "delete_route"


def change_ip_range(cloud: Cloud, network: dict, body: dict) -> str:
    network["ip_range"] = netchecks.larger_range(network, body.get("ip_range"))
    return "change_ip_range"


def change_protection(cloud: Cloud, network: dict, body: dict) -> str:
    if "delete" in body:
        network["protection"]["delete"] = _flag("delete")(body["delete"])["delete"]
    return "change_protection"


ACTIONS: dict[str, Change] = {
    "add_subnet": add_subnet, "delete_subnet": delete_subnet, "add_route": add_route, "delete_route": delete_route,
    "change_ip_range": change_ip_range, "change_protection": change_protection,
}
