"""Primary IPs and ``public_net`` as Hetzner's API has them, and ``/pricing`` in step with the server types
(issue 26, items 2 and 6); in process, without machines."""

from __future__ import annotations

import requests

from localcloud.engine import catalog


def post(api, path, body):
    return requests.post(f"{api.base}/v1{path}", headers=api.headers, json=body)


def server(api, name, **extra):
    r = post(api, "/servers", {"name": name, "server_type": "cx23", "image": "debian-12",
                               "start_after_create": False, **extra})
    assert r.status_code == 201, r.text
    return r.json()["server"]


def test_a_server_gets_an_ipv4_and_an_ipv6_64_as_auto_deleted_primary_ips(local_api):
    s = server(local_api, "dual")
    v4, v6 = s["public_net"]["ipv4"], s["public_net"]["ipv6"]
    assert v6["ip"].endswith("::/64") and v6["ip"].startswith("fd")
    ips = requests.get(f"{local_api.base}/v1/primary_ips", headers=local_api.headers).json()["primary_ips"]
    assert {(p["id"], p["type"], p["assignee_id"], p["auto_delete"]) for p in ips} == {
        (v4["id"], "ipv4", s["id"], True), (v6["id"], "ipv6", s["id"], True)}


def test_without_ipv4_a_server_has_no_ipv4_and_keeps_its_ipv6(local_api):
    s = server(local_api, "v6", public_net={"enable_ipv4": False})
    assert s["public_net"]["ipv4"] is None and s["public_net"]["ipv6"]["ip"].endswith("::/64")
    r = post(local_api, "/servers", {"name": "none", "server_type": "cx23", "image": "debian-12",
                                     "public_net": {"enable_ipv4": False, "enable_ipv6": False}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"


def test_a_primary_ip_given_at_create_is_used_and_outlives_its_server(local_api):
    pip = post(local_api, "/primary_ips", {"name": "keep", "type": "ipv4", "assignee_type": "server",
                                           "location": "nbg1"}).json()["primary_ip"]
    assert pip["assignee_id"] is None and pip["auto_delete"] is False
    wrong = post(local_api, "/servers", {"name": "far", "server_type": "cx23", "image": "debian-12",
                                         "location": "fsn1", "public_net": {"ipv4": pip["id"]}})
    assert wrong.status_code == 400
    s = server(local_api, "kept", location="nbg1", public_net={"ipv4": pip["id"]})
    assert s["public_net"]["ipv4"]["ip"] == pip["ip"] and s["public_net"]["ipv4"]["id"] == pip["id"]
    taken = post(local_api, "/servers", {"name": "twice", "server_type": "cx23", "image": "debian-12",
                                         "location": "nbg1", "public_net": {"ipv4": pip["id"]}})
    assert taken.status_code == 422 and taken.json()["error"]["code"] == "primary_ip_assigned"
    refused = requests.delete(f"{local_api.base}/v1/primary_ips/{pip['id']}", headers=local_api.headers)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "must_be_unassigned"
    local_api.cloud.drop_server(local_api.cloud.store["servers"][s["id"]])
    after = requests.get(f"{local_api.base}/v1/primary_ips/{pip['id']}", headers=local_api.headers).json()
    assert after["primary_ip"]["assignee_id"] is None
    assert requests.delete(f"{local_api.base}/v1/primary_ips/{pip['id']}",
                           headers=local_api.headers).status_code == 204


def test_assign_and_unassign_need_a_stopped_server_and_one_address_of_a_type(local_api):
    s = server(local_api, "host")
    pip = post(local_api, "/primary_ips", {"name": "spare", "type": "ipv4", "assignee_type": "server",
                                           "location": "fsn1"}).json()["primary_ip"]
    local_api.cloud.store["servers"][s["id"]]["status"] = "off"
    r = post(local_api, f"/primary_ips/{pip['id']}/actions/assign", {"assignee_id": s["id"], "assignee_type": "server"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "server_has_ipv4"
    own = s["public_net"]["ipv4"]["id"]
    assert post(local_api, f"/primary_ips/{own}/actions/unassign", {}).status_code == 201
    assert post(local_api, f"/primary_ips/{pip['id']}/actions/assign",
                {"assignee_id": s["id"], "assignee_type": "server"}).status_code == 201
    view = requests.get(f"{local_api.base}/v1/servers/{s['id']}", headers=local_api.headers).json()["server"]
    assert view["public_net"]["ipv4"]["ip"] == pip["ip"]
    local_api.cloud.store["servers"][s["id"]]["status"] = "running"
    r = post(local_api, f"/primary_ips/{pip['id']}/actions/unassign", {})
    assert r.status_code == 422 and r.json()["error"]["code"] == "server_not_stopped"


def test_dns_ptr_and_protection(local_api):
    s = server(local_api, "ptr")
    v6 = s["public_net"]["ipv6"]
    address = v6["ip"].replace("::/64", "::1")
    assert post(local_api, f"/primary_ips/{v6['id']}/actions/change_dns_ptr",
                {"ip": address, "dns_ptr": "web.example.com"}).status_code == 201
    view = requests.get(f"{local_api.base}/v1/servers/{s['id']}", headers=local_api.headers).json()["server"]
    assert view["public_net"]["ipv6"]["dns_ptr"] == [{"ip": address, "dns_ptr": "web.example.com"}]
    assert post(local_api, f"/primary_ips/{v6['id']}/actions/change_dns_ptr",
                {"ip": "10.0.0.1", "dns_ptr": "x.example.com"}).status_code == 400
    assert post(local_api, f"/primary_ips/{v6['id']}/actions/change_protection", {"delete": True}).status_code == 201
    r = requests.delete(f"{local_api.base}/v1/primary_ips/{v6['id']}", headers=local_api.headers)
    assert r.status_code == 423 and r.json()["error"]["code"] == "protected"


def test_pricing_carries_the_server_types_own_prices_and_the_primary_ips():
    from localcloud.api.pricing import pricing

    prices = pricing()
    assert prices["currency"] == "EUR" and prices["vat_rate"] == "19.00"
    by_name = {t["name"]: t["prices"] for t in prices["server_types"]}
    assert by_name == {t["name"]: t["prices"] for t in catalog.SERVER_TYPES}
    ipv4 = next(p for p in prices["primary_ips"] if p["type"] == "ipv4")
    assert {p["location"] for p in ipv4["prices"]} == {loc["name"] for loc in catalog.LOCATIONS}
    assert ipv4["prices"][0]["price_monthly"] == {"net": "0.5000", "gross": "0.5950"}
    assert float(prices["image"]["price_per_gb_month"]["net"]) > 0
