"""Private networks and placement groups checked the way Hetzner checks them (issue 26, points 3 and 4): ranges,
subnets and routes, attachments and their addresses, the spread group's limit of 10. Each refusal is Hetzner's
error object (the API's error schema) and changes nothing. The API runs in process, without machines."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import wait_for
from tests.localcloud.e2e.test_openapi_conformance import SPEC, check
from tests.localcloud.unit.test_api_input_checks import refused


def call(api, method: str, path: str, body=None):
    return requests.request(method, f"{api.base}/v1{path}", headers=api.headers, json=body, timeout=10)


def error(response, code: str, status: int) -> None:
    assert response.status_code == status, response.text
    errors: list[str] = []
    check(response.json(), SPEC["components"]["schemas"]["error_response"], "error", errors)
    assert errors == []
    assert response.json()["error"]["code"] == code


def network(api, name="net", ip_range="10.0.0.0/16", **extra) -> dict:
    r = call(api, "POST", "/networks", {"name": name, "ip_range": ip_range, **extra})
    assert r.status_code == 201, r.text
    return r.json()["network"]


def server(api, name: str, **extra) -> dict:
    """A server that is off (its create action over: the in-process cloud has no disk images to clone)."""
    r = call(api, "POST", "/servers", {"name": name, "server_type": "cx23", "image": "debian-12",
                                        "start_after_create": False, **extra})
    assert r.status_code == 201, r.text
    wait_for(lambda: call(api, "GET", f"/servers/{r.json()['server']['id']}").json()["server"]["status"] == "off",
             10, what="the create action")
    return r.json()["server"]


CLOUD = {"type": "cloud", "network_zone": "eu-central"}


@pytest.mark.parametrize("ip_range", ["8.8.0.0/16", "10.0.0.0/25", "10.0.0.1/16", "10.0.0.0", "fd00::/64", 7, None])
def test_a_network_range_must_be_private_at_least_a_24_and_without_host_bits(local_api, ip_range):
    refused(call(local_api, "POST", "/networks", {"name": "n", "ip_range": ip_range}), "ip_range")
    assert call(local_api, "GET", "/networks").json()["networks"] == []


@pytest.mark.parametrize("subnet", [
    {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.1.0.0/24"},  # outside the network
    {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.0.0/31"},  # smaller than a /30
    {"type": "cloud", "network_zone": "mars-north"},
    {"type": "lan", "network_zone": "eu-central"},
    "10.0.0.0/24",
])
def test_a_bad_subnet_refuses_the_whole_network(local_api, subnet):
    refused(call(local_api, "POST", "/networks", {"name": "n", "ip_range": "10.0.0.0/16", "subnets": [subnet]}),
            "subnets[0]")
    assert call(local_api, "GET", "/networks").json()["networks"] == []


def test_subnets_get_the_first_free_24_and_the_networks_first_address_as_gateway(local_api):
    net = network(local_api, subnets=[CLOUD, {**CLOUD, "ip_range": "10.0.1.0/24"}, CLOUD])
    assert [(s["ip_range"], s["gateway"]) for s in net["subnets"]] == [
        ("10.0.0.0/24", "10.0.0.1"), ("10.0.1.0/24", "10.0.0.1"), ("10.0.2.0/24", "10.0.0.1")]
    r = call(local_api, "POST", f"/networks/{net['id']}/actions/add_subnet", {**CLOUD, "ip_range": "10.0.1.128/25"})
    refused(r, "subnet")


@pytest.mark.parametrize("route", [
    {"destination": "10.0.0.0/24", "gateway": "10.0.1.5"},  # overlaps the subnet
    {"destination": "10.100.0.0/16", "gateway": "10.0.0.1"},  # the network's own gateway
    {"destination": "10.100.0.0/16", "gateway": "10.9.0.5"},  # outside the network
    {"destination": "8.8.8.0/24", "gateway": "10.0.1.5"},  # not private
    {"destination": "10.100.0.0/16", "gateway": "172.31.1.1"},
])
def test_routes_are_checked_as_hetzner_checks_them(local_api, route):
    net = network(local_api, subnets=[CLOUD])
    refused(call(local_api, "POST", f"/networks/{net['id']}/actions/add_route", route), "route")
    ok = call(local_api, "POST", f"/networks/{net['id']}/actions/add_route", {"destination": "0.0.0.0/0",
                                                                              "gateway": "10.0.0.5"})
    assert ok.status_code == 201, ok.text
    assert call(local_api, "GET", f"/networks/{net['id']}").json()["network"]["routes"] == [
        {"destination": "0.0.0.0/0", "gateway": "10.0.0.5"}]


def test_a_range_only_grows_at_its_end(local_api):
    net = network(local_api)
    for bad in ("10.0.0.0/17", "10.1.0.0/15", "10.0.0.0/16"):
        refused(call(local_api, "POST", f"/networks/{net['id']}/actions/change_ip_range", {"ip_range": bad}),
                "ip_range")
    assert call(local_api, "POST", f"/networks/{net['id']}/actions/change_ip_range",
                {"ip_range": "10.0.0.0/15"}).status_code == 201
    assert call(local_api, "GET", f"/networks/{net['id']}").json()["network"]["ip_range"] == "10.0.0.0/15"


def test_servers_get_addresses_from_the_subnet_and_hetzners_errors_for_the_rest(local_api):
    net = network(local_api, subnets=[CLOUD])
    first = server(local_api, "a", networks=[net["id"]])
    assert [(p["network"], p["ip"], p["alias_ips"]) for p in first["private_net"]] == [(net["id"], "10.0.0.2", [])]
    assert first["private_net"][0]["mac_address"].startswith("86:00:00:")
    second = server(local_api, "b")
    attach = f"/servers/{second['id']}/actions/attach_to_network"
    error(call(local_api, "POST", attach, {"network": net["id"], "ip": "10.0.0.2"}), "ip_not_available", 422)
    error(call(local_api, "POST", attach, {"network": net["id"], "ip": "10.0.0.1"}), "ip_not_available", 422)
    refused(call(local_api, "POST", attach, {"network": net["id"], "ip": "10.0.5.9"}), "ip")
    refused(call(local_api, "POST", attach, {"network": net["id"], "alias_ips": "10.0.0.9"}), "alias_ips")
    r = call(local_api, "POST", attach, {"network": net["id"], "alias_ips": ["10.0.0.9"]})
    assert r.status_code == 201, r.text
    error(call(local_api, "POST", attach, {"network": net["id"]}), "server_already_attached", 422)
    overlapping = network(local_api, "other", "10.0.0.0/8", subnets=[{**CLOUD, "ip_range": "10.5.0.0/24"}])
    error(call(local_api, "POST", attach, {"network": overlapping["id"]}), "networks_overlap", 422)
    bare = network(local_api, "bare", "192.168.0.0/24")
    error(call(local_api, "POST", attach, {"network": bare["id"]}), "no_subnet_available", 422)
    got = call(local_api, "GET", f"/servers/{second['id']}").json()["server"]["private_net"]
    assert [(p["ip"], p["alias_ips"]) for p in got] == [("10.0.0.3", ["10.0.0.9"])]
    assert sorted(call(local_api, "GET", f"/networks/{net['id']}").json()["network"]["servers"]) == sorted(
        [first["id"], second["id"]])
    refused(call(local_api, "POST", f"/networks/{net['id']}/actions/delete_subnet", {"ip_range": "10.0.9.0/24"}),
            "ip_range")
    error(call(local_api, "POST", f"/networks/{net['id']}/actions/delete_subnet", {"ip_range": "10.0.0.0/24"}),
          "resource_in_use", 409)


def test_a_server_create_naming_a_network_without_room_creates_nothing(local_api):
    bare = network(local_api, "bare")
    error(call(local_api, "POST", "/servers", {"name": "s", "server_type": "cx23", "image": "debian-12",
                                               "start_after_create": False, "networks": [bare["id"]]}),
          "no_subnet_available", 422)
    error(call(local_api, "POST", "/servers", {"name": "s", "server_type": "cx23", "image": "debian-12",
                                               "networks": [999]}), "not_found", 404)
    assert call(local_api, "GET", "/servers").json()["servers"] == []


def test_deleting_a_network_detaches_its_servers_unless_it_is_protected(local_api):
    net = network(local_api, subnets=[CLOUD])
    s = server(local_api, "a", networks=[net["id"]])
    call(local_api, "POST", f"/networks/{net['id']}/actions/change_protection", {"delete": True})
    error(call(local_api, "DELETE", f"/networks/{net['id']}"), "protected", 423)
    call(local_api, "POST", f"/networks/{net['id']}/actions/change_protection", {"delete": False})
    assert call(local_api, "DELETE", f"/networks/{net['id']}").status_code == 204
    assert call(local_api, "GET", f"/servers/{s['id']}").json()["server"]["private_net"] == []


def test_names_are_unique_and_labels_select(local_api):
    network(local_api, "n1", labels={"env": "a"})
    network(local_api, "n2", "10.1.0.0/16", labels={"env": "b"})
    error(call(local_api, "POST", "/networks", {"name": "n1", "ip_range": "10.2.0.0/16"}), "uniqueness_error", 409)
    got = call(local_api, "GET", "/networks?label_selector=env=b").json()["networks"]
    assert [n["name"] for n in got] == ["n2"]


def test_an_11th_server_into_a_spread_group_is_refused_with_hetzners_error_and_nothing_is_created(local_api):
    refused(call(local_api, "POST", "/placement_groups", {"name": "g", "type": "cluster"}), "type")
    group = call(local_api, "POST", "/placement_groups", {"name": "g", "type": "spread"}).json()["placement_group"]
    for i in range(10):
        assert server(local_api, f"s{i}", placement_group=group["id"])["placement_group"]["id"] == group["id"]
    r = call(local_api, "POST", "/servers", {"name": "s10", "server_type": "cx23", "image": "debian-12",
                                             "start_after_create": False, "placement_group": group["id"]})
    error(r, "placement_group_member_limit_reached", 422)
    assert r.json()["error"]["message"] == f"placement group with ID {group['id']} contains already 10 servers"
    assert len(call(local_api, "GET", "/servers?per_page=50").json()["servers"]) == 10
    assert len(call(local_api, "GET", f"/placement_groups/{group['id']}").json()["placement_group"]["servers"]) == 10


def test_a_server_joins_a_group_only_when_off_and_only_one(local_api):
    g1 = call(local_api, "POST", "/placement_groups", {"name": "g1", "type": "spread"}).json()["placement_group"]
    g2 = call(local_api, "POST", "/placement_groups", {"name": "g2", "type": "spread"}).json()["placement_group"]
    s = server(local_api, "a", placement_group=g1["id"])
    add = f"/servers/{s['id']}/actions/add_to_placement_group"
    error(call(local_api, "POST", add, {"placement_group": g2["id"]}), "already_in_placement_group", 422)
    assert call(local_api, "POST", f"/servers/{s['id']}/actions/remove_from_placement_group").status_code == 201
    assert call(local_api, "GET", f"/servers/{s['id']}").json()["server"]["placement_group"] is None
    assert call(local_api, "POST", add, {"placement_group": g2["id"]}).status_code == 201
    assert call(local_api, "DELETE", f"/placement_groups/{g2['id']}").status_code == 204
    assert call(local_api, "GET", f"/servers/{s['id']}").json()["server"]["placement_group"] is None
