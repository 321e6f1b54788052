"""API fidelity through the official SDK (and raw HTTP where the SDK hides the wire)."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

import pytest
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from hcloud.ssh_keys import SSHKey

from imagekit.host.keys import new_ed25519

pytestmark = pytest.mark.e2e


def raw(ep, method, path, body=None, token=None):
    req = urllib.request.Request(ep.endpoint + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {token or ep.token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"{}")


def test_wrong_token_is_401(cloud_endpoint):
    bad = Client(token="wrong", api_endpoint=cloud_endpoint.endpoint)
    with pytest.raises(APIException) as exc:
        bad.server_types.get_all()
    assert exc.value.code == "unauthorized"
    status, _, body = raw(cloud_endpoint, "GET", "/servers", token="wrong")
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_catalogue(client):
    types = {t.name: t for t in client.server_types.get_all()}
    assert {"cx23", "cpx22", "cax11"} <= set(types)
    assert types["cax11"].architecture == "arm"
    assert all(loc.deprecation for loc in types["cx22"].locations)
    assert not any(loc.deprecation for loc in types["cx23"].locations)
    assert {loc.name for loc in client.locations.get_all()} >= {"fsn1", "nbg1", "hel1", "ash"}
    debian = client.images.get_by_name_and_architecture("debian-12", "x86")
    assert debian.type == "system" and debian.os_flavor == "debian"


def test_rate_limit_headers_and_request_log(cloud_endpoint):
    status, headers, _ = raw(cloud_endpoint, "GET", "/locations")
    assert status == 200
    assert int(headers["RateLimit-Limit"]) >= int(headers["RateLimit-Remaining"]) >= 0
    assert int(headers["RateLimit-Reset"]) > 0
    log = cloud_endpoint.admin("GET", "/_admin/requests")["requests"]
    assert log[-1]["path"] == "/v1/locations" and log[-1]["status"] == 200 and "duration_ms" in log[-1]


def test_enforced_rate_limit(cloud_endpoint):
    cloud_endpoint.admin("PUT", "/_admin/rate_limit", {"limit": 3, "enforce": True})
    try:
        statuses = [raw(cloud_endpoint, "GET", "/locations")[0] for _ in range(5)]
        status, _, body = raw(cloud_endpoint, "GET", "/locations")
    finally:
        cloud_endpoint.admin("PUT", "/_admin/rate_limit", {"limit": 3600, "enforce": False})
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"


def test_keys_labels_selectors_pagination_sort(cloud_unchanged, cloud_endpoint):
    """Other keys may exist in the cloud: every listing here is narrowed to this test's ``suite`` label."""
    client = cloud_unchanged
    suite = f"suite={secrets.token_hex(4)}"

    def labels(i):
        return {"suite": suite[6:], "batch": "a" if i % 2 else "b", "n": str(i)} | ({"odd": ""} if i % 2 else {})

    keys = [client.ssh_keys.create(name=f"k{i:02d}-{suite[6:]}", public_key=new_ed25519().public_openssh,
                                   labels=labels(i)) for i in range(60)]
    try:
        assert len(client.ssh_keys.get_all(label_selector=suite)) == 60  # the SDK walks two pages of 50
        status, _, body = raw(cloud_endpoint, "GET", f"/ssh_keys?per_page=50&page=2&label_selector={suite}")
        assert len(body["ssh_keys"]) == 10
        assert body["meta"]["pagination"] | {} == {"page": 2, "per_page": 50, "previous_page": 1, "next_page": None,
                                                  "last_page": 2, "total_entries": 60}

        def sel(s):
            return sorted(k.name.split("-")[0] for k in client.ssh_keys.get_all(label_selector=f"{suite},{s}"))

        assert len(sel("batch=a")) == 30 and sel("batch==a") == sel("odd") == sel("batch!=b")
        assert sel("!odd") == sel("batch in (b)") == sel("batch notin (a,c)")
        assert sel("batch=a,n in (1,3,4)") == ["k01", "k03"]
        listed = raw(cloud_endpoint, "GET", f"/ssh_keys?sort=name:desc&per_page=50&label_selector={suite}")[2]
        assert [k["name"].split("-")[0] for k in listed["ssh_keys"]] == [f"k{i:02d}" for i in range(59, 9, -1)]
        images = [i.id for i in client.images.get_all(sort=["id:desc"])]
        assert images == sorted(images, reverse=True)
        with pytest.raises(APIException) as exc:
            client.ssh_keys.get_all(label_selector="batch in (a")
        assert exc.value.code == "invalid_input"
        with pytest.raises(APIException) as exc:
            client.ssh_keys.create(name=keys[0].name, public_key=new_ed25519().public_openssh)
        assert exc.value.code == "uniqueness_error"
        with pytest.raises(APIException) as exc:
            client.ssh_keys.create(name="other", public_key=keys[1].public_key)
        assert exc.value.code == "uniqueness_error"
        with pytest.raises(APIException) as exc:
            client.ssh_keys.get_by_id(1)
        assert exc.value.code == "not_found"
        with pytest.raises(APIException) as exc:
            client.ssh_keys.create(name="garbage", public_key="ssh-ed25519 nope")
        assert exc.value.code == "invalid_input"
    finally:
        for k in keys:
            k.delete()


BAD_SERVERS = [
    ({"name": "not_a_hostname!"}, "invalid_input", "name"),
    ({"name": "-leading-dash"}, "invalid_input", "name"),
    ({"server_type": ServerType(name="cx999")}, "invalid_input", "server_type"),
    ({"image": Image(name="windows-95")}, "invalid_input", "image"),
    ({"image": Image(id=42)}, "invalid_input", "image"),
    ({"location": "mars1"}, "invalid_input", "location"),
    ({"ssh_keys": [SSHKey(name="no-such-key")]}, "invalid_input", "ssh_keys"),
    ({"user_data": "#cloud-config\n" + "#" * (32 * 1024)}, "invalid_input", "user_data"),
    ({"server_type": ServerType(name="cax11")}, "invalid_input", "image"),  # arm type, x86 image
    ({"labels": {"bad key": "x"}}, "invalid_input", "labels"),
]


@pytest.mark.parametrize("override,code,field", BAD_SERVERS, ids=[b[2] + str(i) for i, b in enumerate(BAD_SERVERS)])
def test_bad_server_input_creates_nothing(cloud_unchanged, override, code, field):
    client = cloud_unchanged
    before = {s.id for s in client.servers.get_all()}
    args = {"name": "bad-input", "server_type": ServerType(name="cx23"), "image": Image(name="debian-12")}
    args.update(override)
    if isinstance(args.get("location"), str):
        from hcloud.locations import Location

        args["location"] = Location(name=args["location"])
    with pytest.raises(APIException) as exc:
        client.servers.create(**args)
    assert exc.value.code == code
    assert field in {f["name"] for f in exc.value.details["fields"]}
    assert {s.id for s in client.servers.get_all()} == before


def test_duplicate_server_name_and_firewall_lifecycle(cloud_unchanged):
    client = cloud_unchanged
    role = f"fw-{secrets.token_hex(4)}"
    resp = client.servers.create(name="fw-target", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 start_after_create=False, labels={"role": role})
    resp.action.wait_until_finished(60)
    server = client.servers.get_by_id(resp.server.id)
    assert server.status == "off"
    with pytest.raises(APIException) as exc:
        client.servers.create(name="fw-target", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    assert exc.value.code == "uniqueness_error"
    assert [s.id for s in client.servers.get_all(name="fw-target")] == [server.id]
    assert [s.name for s in client.servers.get_all(label_selector=f"role={role}")] == ["fw-target"]

    from hcloud.firewalls import FirewallResource, FirewallRule

    rules = [FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0", "::/0"]),
             FirewallRule(direction="in", protocol="udp", port="41641", source_ips=["0.0.0.0/0"])]
    fw = client.firewalls.create(name=role, rules=rules, labels={"profile": "agent"},
                                 resources=[FirewallResource(type="server", server=server)]).firewall
    fw = client.firewalls.get_by_id(fw.id)
    assert [(r.protocol, r.port) for r in fw.rules] == [("tcp", "22"), ("udp", "41641")]
    assert [r.server.id for r in fw.applied_to] == [server.id]
    assert [f.firewall.id for f in client.servers.get_by_id(server.id).public_net.firewalls] == [fw.id]
    with pytest.raises(APIException) as exc:
        fw.delete()
    assert exc.value.code == "resource_in_use"
    with pytest.raises(APIException) as exc:
        client.firewalls.create(name="bad", rules=[FirewallRule(direction="in", protocol="tcp", source_ips=["x"])])
    assert exc.value.code == "invalid_input"
    for action in fw.remove_from_resources([FirewallResource(type="server", server=server)]):
        action.wait_until_finished(10)
    fw.delete()
    client.servers.delete(server).wait_until_finished(60)


def test_request_faults_and_sdk_retries(cloud_endpoint, client):
    # Two injected conflicts: the SDK's retry policy absorbs them.
    cloud_endpoint.admin("PUT", "/_admin/faults", [{"method": "GET", "path": "^/v1/locations$", "code": "conflict",
                                                    "times": 2}])
    try:
        assert client.locations.get_all()
        fired = cloud_endpoint.admin("GET", "/_admin/faults")["faults"][0]["fired"]
        assert fired == 2
        cloud_endpoint.admin("PUT", "/_admin/faults", [{"path": "^/v1/server_types$", "code": "maintenance"}])
        with pytest.raises(APIException) as exc:
            client.server_types.get_all()
        assert exc.value.code == "maintenance"
        # Gateway errors carry no JSON, like a real load balancer's; the SDK retries them too.
        cloud_endpoint.admin("PUT", "/_admin/faults", [{"path": "^/v1/images$", "status": 502, "times": 1},
                                                        {"path": "^/v1/images$", "status": 504, "times": 1}])
        assert client.images.get_all(name="debian-12")
        assert [f["fired"] for f in cloud_endpoint.admin("GET", "/_admin/faults")["faults"]] == [1, 1]
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")


def test_action_fault_ends_in_error_and_leaves_no_image(cloud_unchanged, cloud_endpoint):
    client = cloud_unchanged
    resp = client.servers.create(name="fault-target", server_type=ServerType(name="cx23"),
                                 image=Image(name="debian-12"), start_after_create=False)
    resp.action.wait_until_finished(60)
    snapshots = {i.id for i in client.images.get_all(type="snapshot")}
    cloud_endpoint.admin("PUT", "/_admin/faults", [{"action": "create_image", "times": 1}])
    try:
        result = client.servers.get_by_id(resp.server.id).create_image(description="doomed")
        from hcloud.actions import ActionFailedException

        with pytest.raises(ActionFailedException):
            result.action.wait_until_finished(60)
        assert {i.id for i in client.images.get_all(type="snapshot")} == snapshots
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    client.servers.delete(resp.server).wait_until_finished(60)
