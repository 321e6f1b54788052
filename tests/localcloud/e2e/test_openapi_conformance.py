"""Responses hold to Hetzner's published API schema (OpenAPI 3.0, tests/localcloud/data/hcloud-openapi.json).

A small structural validator: required keys, types, nullability and enums, following
``$ref`` and ``allOf``. Enough to catch a missing or mistyped field a standard client needs.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

pytestmark = pytest.mark.e2e
SPEC = json.loads((Path(__file__).parents[1] / "data" / "hcloud-openapi.json").read_text())
TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        node = SPEC
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def check(value, schema: dict, where: str, errors: list[str]) -> None:
    schema = resolve(schema)
    if value is None:
        parts = [schema, *(resolve(s) for s in schema.get("allOf", []))]
        if not any(p.get("nullable") for p in parts) and schema:
            errors.append(f"{where}: null but not nullable")
        return
    if "allOf" in schema:
        for sub in schema["allOf"]:
            check(value, sub, where, errors)
        return
    expected = TYPES.get(schema.get("type", ""))
    if expected and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        errors.append(f"{where}: {type(value).__name__} instead of {schema['type']}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required '{key}'")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                check(value[key], sub, f"{where}.{key}", errors)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value[:5]):
            check(item, schema["items"], f"{where}[{i}]", errors)


def get(ep, path):
    req = urllib.request.Request(ep.endpoint + path, headers={"Authorization": f"Bearer {ep.token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def resources(client):
    """One of each resource kind, so every list and get endpoint has something to return; the server is on a
    network and in a placement group, so that its ``private_net`` and ``placement_group`` are filled in."""
    from hcloud.networks import NetworkRoute, NetworkSubnet

    from imagekit.host.keys import new_ed25519

    key = client.ssh_keys.create(name="schema", public_key=new_ed25519().public_openssh, labels={"t": "schema"})
    network = client.networks.create(name="schema", ip_range="10.0.0.0/16", routes=[
        NetworkRoute(destination="10.100.0.0/16", gateway="10.0.1.9")], subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")])
    group = client.placement_groups.create(name="schema", type="spread").placement_group
    resp = client.servers.create(name="schema", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 start_after_create=False, ssh_keys=[key], networks=[network], placement_group=group)
    resp.action.wait_until_finished(60)
    snap = client.servers.get_by_id(resp.server.id).create_image(description="schema")
    snap.action.wait_until_finished(60)
    fw = client.firewalls.create(name="schema").firewall
    pip = client.primary_ips.create(type="ipv6", name="schema", location=Location(name="fsn1")).primary_ip
    yield {"servers": resp.server.id, "images": snap.image.id, "ssh_keys": key.id, "firewalls": fw.id,
           "actions": resp.action.id, "server_types": 104, "locations": 1, "datacenters": 4, "networks": network.id,
           "placement_groups": group.id, "primary_ips": pip.id}
    client.primary_ips.delete(pip)
    fw.delete()
    client.servers.delete(resp.server).wait_until_finished(60)
    client.images.delete(snap.image)
    key.delete()
    network.delete()
    group.delete()


KINDS = ["servers", "images", "ssh_keys", "firewalls", "actions", "server_types", "locations", "datacenters",
         "networks", "placement_groups", "primary_ips"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["list", "get"])
def test_response_matches_schema(cloud_endpoint, resources, kind, form):
    path = f"/{kind}" if form == "list" else f"/{kind}/{{id}}"
    if form == "list" and kind == "actions":
        path, url = "/actions", f"/actions?id={resources['actions']}"
    else:
        url = path.replace("{id}", str(resources[kind]))
    schema = SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    errors: list[str] = []
    check(get(cloud_endpoint, url), schema, f"GET {url}", errors)
    assert errors == []


def call(ep, method: str, template: str, body: dict | None = None, **ids) -> dict:
    """``method template`` (a documented path, its ``{id}``s from ``ids``): the answer must have the operation's
    documented success status and match that response's schema; returns its body (``{}`` for 204)."""
    path = template.format(**ids)
    req = urllib.request.Request(ep.endpoint + path, method=method.upper(),
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {ep.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        status, text = r.status, r.read()
    responses = SPEC["paths"][template][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path}: {status} is not documented ({sorted(responses)})"
    if not text:
        return {}
    data = json.loads(text)
    errors: list[str] = []
    check(data, responses[str(status)]["content"]["application/json"]["schema"], f"{method.upper()} {path}", errors)
    assert errors == []
    return data


def finished(ep, action: dict) -> None:
    deadline = time.monotonic() + 30
    while get(ep, f"/actions/{action['id']}")["action"]["status"] == "running":
        assert time.monotonic() < deadline, f"action {action['command']} did not finish"
        time.sleep(0.1)


def test_every_network_and_placement_group_operation_answers_as_documented(cloud_endpoint, resources):
    """Each operation the local cloud adds for private networks and placement groups (issue 26, points 3, 4)."""
    ep, sid = cloud_endpoint, resources["servers"]
    nid = call(ep, "post", "/networks", {"name": "schema-ops", "ip_range": "10.2.0.0/16"})["network"]["id"]
    try:
        call(ep, "put", "/networks/{id}", {"name": "schema-ops2", "labels": {"a": "b"}}, id=nid)
        for command, body in [("add_subnet", {"type": "cloud", "network_zone": "eu-central"}),
                              ("add_route", {"destination": "10.200.0.0/16", "gateway": "10.2.0.9"}),
                              ("delete_route", {"destination": "10.200.0.0/16", "gateway": "10.2.0.9"}),
                              ("change_ip_range", {"ip_range": "10.2.0.0/15"}),
                              ("change_protection", {"delete": False})]:
            finished(ep, call(ep, "post", f"/networks/{{id}}/actions/{command}", body, id=nid)["action"])
        for command in ("attach_to_network", "detach_from_network"):
            finished(ep, call(ep, "post", f"/servers/{{id}}/actions/{command}", {"network": nid}, id=sid)["action"])
        action = call(ep, "get", "/networks/{id}/actions", id=nid)["actions"][0]
        call(ep, "get", "/networks/actions")
        call(ep, "get", "/networks/actions/{id}", id=action["id"])
        call(ep, "get", "/networks/{id}/actions/{action_id}", id=nid, action_id=action["id"])
        finished(ep, call(ep, "post", "/networks/{id}/actions/delete_subnet", {"ip_range": "10.2.0.0/24"},
                          id=nid)["action"])
    finally:
        call(ep, "delete", "/networks/{id}", id=nid)
    group = call(ep, "post", "/placement_groups", {"name": "schema-ops", "type": "spread"})["placement_group"]
    try:
        call(ep, "put", "/placement_groups/{id}", {"name": "schema-ops2", "labels": {"x": "y"}}, id=group["id"])
        for command, body in [("remove_from_placement_group", None),
                              ("add_to_placement_group", {"placement_group": group["id"]}),
                              ("remove_from_placement_group", None),
                              ("add_to_placement_group", {"placement_group": resources["placement_groups"]})]:
            finished(ep, call(ep, "post", f"/servers/{{id}}/actions/{command}", body, id=sid)["action"])
    finally:
        call(ep, "delete", "/placement_groups/{id}", id=group["id"])
def validate(ep, url: str, path: str, method: str = "get", status: str = "200", body=None) -> list[str]:
    req = urllib.request.Request(ep.endpoint + url, method=method.upper(),
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {ep.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read() or b"{}")
    schema = SPEC["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    errors: list[str] = []
    check(answer, schema, f"{method.upper()} {url}", errors)
    return errors


def test_pricing_matches_schema(cloud_endpoint):
    assert validate(cloud_endpoint, "/pricing", "/pricing") == []


def test_primary_ip_operations_match_schema(cloud_endpoint, client, resources):
    """Every Primary IP operation: create, update, each action, their action lists, delete."""
    ep, sid = cloud_endpoint, resources["servers"]
    made = {"name": "schema-v4", "type": "ipv4", "assignee_type": "server", "location": "fsn1"}
    errors = validate(ep, "/primary_ips", "/primary_ips", "post", "201", made)
    pid = client.primary_ips.get_by_name("schema-v4").id
    own = client.servers.get_by_id(sid).public_net.primary_ipv4.id  # the stopped server's own IPv4
    steps = [
        (f"/primary_ips/{pid}", "/primary_ips/{id}", "put", "200", {"name": "schema-v4b", "auto_delete": False}),
        (f"/primary_ips/{own}/actions/unassign", "/primary_ips/{id}/actions/unassign", "post", "201", {}),
        (f"/primary_ips/{pid}/actions/assign", "/primary_ips/{id}/actions/assign", "post", "201",
         {"assignee_id": sid, "assignee_type": "server"}),
        (f"/primary_ips/{pid}/actions/unassign", "/primary_ips/{id}/actions/unassign", "post", "201", {}),
        (f"/primary_ips/{own}/actions/assign", "/primary_ips/{id}/actions/assign", "post", "201",
         {"assignee_id": sid, "assignee_type": "server"}),
        (f"/primary_ips/{pid}/actions/change_dns_ptr", "/primary_ips/{id}/actions/change_dns_ptr", "post", "201",
         {"ip": client.primary_ips.get_by_id(pid).ip, "dns_ptr": "schema.example.com"}),
        (f"/primary_ips/{pid}/actions/change_protection", "/primary_ips/{id}/actions/change_protection", "post",
         "201", {"delete": False}),
        (f"/primary_ips/{pid}/actions", "/primary_ips/{id}/actions", "get", "200", None),
        ("/primary_ips/actions", "/primary_ips/actions", "get", "200", None),
    ]
    for url, path, method, status, body in steps:
        errors += validate(ep, url, path, method, status, body)
    action_id = client.primary_ips.get_by_id(pid).get_actions()[0].id
    errors += validate(ep, f"/primary_ips/{pid}/actions/{action_id}", "/primary_ips/{id}/actions/{action_id}")
    errors += validate(ep, f"/primary_ips/actions/{action_id}", "/primary_ips/actions/{id}")
    client.primary_ips.delete(client.primary_ips.get_by_id(pid))
    assert errors == []
