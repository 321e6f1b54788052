"""Responses hold to Hetzner's published API schema (OpenAPI 3.0, tests/localcloud/data/hcloud-openapi.json).

A small structural validator: required keys, types, nullability and enums, following
``$ref`` and ``allOf``. Enough to catch a missing or mistyped field a standard client needs.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from hcloud.images import Image
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
    """One of each resource kind, so every list and get endpoint has something to return."""
    from imagekit.host.keys import new_ed25519

    key = client.ssh_keys.create(name="schema", public_key=new_ed25519().public_openssh, labels={"t": "schema"})
    resp = client.servers.create(name="schema", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 start_after_create=False, ssh_keys=[key])
    resp.action.wait_until_finished(60)
    snap = client.servers.get_by_id(resp.server.id).create_image(description="schema")
    snap.action.wait_until_finished(60)
    fw = client.firewalls.create(name="schema").firewall
    yield {"servers": resp.server.id, "images": snap.image.id, "ssh_keys": key.id, "firewalls": fw.id,
           "actions": resp.action.id, "server_types": 104, "locations": 1, "datacenters": 4}
    fw.delete()
    client.servers.delete(resp.server).wait_until_finished(60)
    client.images.delete(snap.image)
    key.delete()


KINDS = ["servers", "images", "ssh_keys", "firewalls", "actions", "server_types", "locations", "datacenters"]


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
