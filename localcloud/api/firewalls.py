"""``/v1/firewalls``: their rules and the servers they apply to (enforced on the host by ``host/hostfirewall``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response

from ..engine.cloud import Cloud
from ..errors import APIError, invalid_input
from ..state.store import now
from . import labels
from .jsonbody import body_of
from .listing import BY_NAME, listing
from .update import NameRule, update
from .validation import FIREWALL_NAME_RULE, firewall_name, is_firewall_name, list_field, validate_rules
from .views import firewall_json

log = logging.getLogger("localcloud")
FIREWALL_NAME = NameRule(is_firewall_name, FIREWALL_NAME_RULE)


def router(cloud: Cloud) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/firewalls")
    def list_firewalls(request: Request):
        items = [firewall_json(f) for f in cloud.store["firewalls"].values()]
        return listing(request, "firewalls", items, sort_fields=("id", "name", "created"), filters=BY_NAME)

    @api.post("/v1/firewalls", status_code=201)
    async def create(request: Request):
        result = create_firewall(cloud, await body_of(request))
        return {"firewall": firewall_json(result["firewall"]), "actions": result["actions"]}

    @api.get("/v1/firewalls/{ident}")
    def get_firewall(ident: int):
        return {"firewall": firewall_json(cloud.get("firewalls", ident, "firewall"))}

    @api.put("/v1/firewalls/{ident}")
    async def update_firewall(ident: int, request: Request):
        return {"firewall": firewall_json(update(cloud, "firewalls", ident, "firewall", await body_of(request),
                                                   name=FIREWALL_NAME))}

    @api.delete("/v1/firewalls/{ident}", status_code=204)
    def delete(ident: int):
        delete_firewall(cloud, ident)
        return Response(status_code=204)

    @api.post("/v1/firewalls/{ident}/actions/{command}", status_code=201)
    async def action(ident: int, command: str, request: Request):
        return {"actions": firewall_action(cloud, ident, command, await body_of(request))}

    return api


def create_firewall(cloud: Cloud, body: dict) -> dict:
    name = firewall_name(body.get("name"))
    rules = validate_rules(body.get("rules") or [])
    lab = labels.validate(body.get("labels"))
    targets = _targets(cloud, list_field(body, "apply_to"))
    with cloud.store.lock:
        cloud.check_name_free("firewalls", name, "firewall")
        fw: dict[str, Any] = {"id": cloud.store.new_id("firewalls"), "name": name, "labels": lab, "created": now(),
              "rules": rules, "applied_to": []}
        cloud.store["firewalls"][fw["id"]] = fw
        actions = [cloud.new_action("set_firewall_rules", [("firewall", fw["id"])], status="success")]
        if targets:
            actions.append(_apply(cloud, fw, targets))
        cloud.store.save()
    if targets:
        cloud.enforce_firewalls()
    return {"firewall": fw, "actions": actions}


def _targets(cloud: Cloud, apply_to) -> list[dict]:
    servers = []
    for i, res in enumerate(apply_to):
        if not isinstance(res, dict) or res.get("type") != "server" or not isinstance(res.get("server"), dict):
            raise invalid_input(f"apply_to[{i}]", "only {'type': 'server', 'server': {'id': ..}} is supported")
        servers.append(cloud.get("servers", res["server"].get("id"), "server"))
    return servers


def _apply(cloud: Cloud, fw: dict, servers: list[dict]) -> dict:
    for s in servers:
        if fw["id"] in s["firewalls"]:
            raise APIError("firewall_already_applied", f"firewall already applied to server {s['id']}")
    for s in servers:
        s["firewalls"].append(fw["id"])
        fw["applied_to"].append(s["id"])
    return cloud.new_action("apply_firewall", [("firewall", fw["id"])] + [("server", s["id"]) for s in servers],
                           status="success")


def firewall_action(cloud: Cloud, fid: int, command: str, body: dict) -> list[dict]:
    fw = cloud.get("firewalls", fid, "firewall")
    with cloud.store.lock:
        if command == "set_rules":
            fw["rules"] = validate_rules(body.get("rules") or [])
            result = [cloud.new_action("set_firewall_rules", [("firewall", fid)], status="success")]
        elif command == "apply_to_resources":
            result = [_apply(cloud, fw, _targets(cloud, list_field(body, "apply_to")))]
        elif command == "remove_from_resources":
            servers = _targets(cloud, list_field(body, "remove_from"))
            for s in servers:
                if fid not in s["firewalls"]:
                    raise APIError("firewall_already_removed", f"firewall is not applied to server {s['id']}")
            for s in servers:
                s["firewalls"].remove(fid)
                fw["applied_to"].remove(s["id"])
            result = [cloud.new_action("remove_firewall", [("firewall", fid)] +
                                      [("server", s["id"]) for s in servers], status="success")]
        else:
            raise APIError("not_found", f"firewall action '{command}' does not exist", status=404)
        cloud.store.save()
    cloud.enforce_firewalls()
    return result


def delete_firewall(cloud: Cloud, fid: int) -> None:
    fw = cloud.get("firewalls", fid, "firewall")
    if fw["applied_to"]:
        raise APIError("resource_in_use", "firewall is still applied to resources; remove it first")
    with cloud.store.lock:
        cloud.store["firewalls"].pop(fid)
        cloud.store.save()


def repair_stored_rules(cloud: Cloud) -> None:
    """Drop stored rules that today's checks refuse (a port 0, 99999 or 9-1, a bad CIDR, kept by a local cloud
    from before those checks): nft would refuse the whole ruleset and the start would fail. Each firewall keeps
    its other rules, so it only gets stricter; a log line names what went."""
    with cloud.store.lock:
        dropped = 0
        for fw in cloud.store["firewalls"].values():
            kept = []
            for rule in fw.get("rules") or []:
                try:
                    kept += validate_rules([rule])
                except APIError as exc:
                    dropped += 1
                    log.warning("firewall %s (%s): dropped a stored rule the API no longer accepts (%s): %s",
                                fw["id"], fw.get("name"), exc.details["fields"][0]["messages"][0], rule)
            fw["rules"] = kept
        if dropped:
            cloud.store.save()
