"""Inputs are checked the way Hetzner checks them (issue 23, item 5): ports 1-65535 with from <= to, names and
labels matched whole, a bad firewall never reaches nft, and rules stored before these checks never stop a start.

Each refusal is Hetzner's documented ``invalid_input`` error: the API's error schema (the OpenAPI description)
with ``details.fields`` naming the field and what is wrong with it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess

import pytest
import requests

from imagekit.host.keys import new_ed25519
from localcloud.api import firewalls
from localcloud.engine.cloud import Cloud
from localcloud.engine.faults import Faults
from localcloud.host import hostfirewall
from tests.localcloud.e2e.test_openapi_conformance import SPEC, check

BAD_PORTS = ["0", "99999", "9-1", "65536", "1-65536", "-1", "80-", "80\n", "any\n", " 80", 80, None]
GOOD_PORTS = ["1", "65535", "1-65535", "80-80", "any"]


def refused(response, field: str) -> None:
    """``response`` is Hetzner's invalid_input naming ``field``."""
    assert response.status_code == 400, response.text
    body = response.json()
    errors: list[str] = []
    check(body, SPEC["components"]["schemas"]["error_response"], "error", errors)
    assert errors == []
    assert body["error"]["code"] == "invalid_input"
    assert [f["name"] for f in body["error"]["details"]["fields"]] == [field]
    assert all(isinstance(m, str) and m for f in body["error"]["details"]["fields"] for m in f["messages"])


def rule(port, **extra) -> dict:
    return {"direction": "in", "protocol": "tcp", "port": port, "source_ips": ["0.0.0.0/0"], **extra}


@pytest.mark.parametrize("port", BAD_PORTS)
def test_a_port_outside_1_to_65535_or_a_reversed_range_is_refused_on_create_and_set_rules(local_api, port):
    h, base = local_api.headers, local_api.base
    refused(requests.post(f"{base}/v1/firewalls", headers=h, json={"name": "fw", "rules": [rule(port)]}), "rules[0]")
    fid = requests.post(f"{base}/v1/firewalls", headers=h, json={"name": "fw"}).json()["firewall"]["id"]
    refused(requests.post(f"{base}/v1/firewalls/{fid}/actions/set_rules", headers=h,
                          json={"rules": [rule("22"), rule(port)]}), "rules[1]")
    assert requests.get(f"{base}/v1/firewalls/{fid}", headers=h).json()["firewall"]["rules"] == []


def test_ports_at_the_edges_and_any_are_taken(local_api):
    r = requests.post(f"{local_api.base}/v1/firewalls", headers=local_api.headers,
                      json={"name": "fw", "rules": [rule(p) for p in GOOD_PORTS]})
    assert r.status_code == 201, r.text
    assert [x["port"] for x in r.json()["firewall"]["rules"]] == GOOD_PORTS


@pytest.mark.parametrize("bad", [{"source_ips": ["0.0.0.0/0"] * 101}, {"source_ips": [5]}, {"source_ips": "10.0.0.0/8"},
                                 {"description": "d" * 256}, {"description": 7}])
def test_rule_fields_beyond_hetzners_limits_are_refused(local_api, bad):
    r = requests.post(f"{local_api.base}/v1/firewalls", headers=local_api.headers,
                      json={"name": "fw", "rules": [rule("22", **bad)]})
    refused(r, "rules[0]")


def test_a_refused_firewall_never_reaches_nft(local_api):
    """Not on create with a server to apply to, nor on set_rules of a firewall that is applied."""
    calls = []
    local_api.cloud.filter_guests = calls.append
    h, base = local_api.headers, local_api.base
    key = requests.post(f"{base}/v1/ssh_keys", headers=h,
                        json={"name": "k", "public_key": new_ed25519().public_openssh})
    server = requests.post(f"{base}/v1/servers", headers=h, json={
        "name": "s", "server_type": "cx23", "image": "debian-12", "start_after_create": False,
        "ssh_keys": [key.json()["ssh_key"]["id"]]}).json()["server"]
    apply_to = [{"type": "server", "server": {"id": server["id"]}}]
    refused(requests.post(f"{base}/v1/firewalls", headers=h, json={"name": "fw", "rules": [rule("9-1")],
                                                                    "apply_to": apply_to}), "rules[0]")
    assert calls == []
    r = requests.post(f"{base}/v1/firewalls", headers=h,
                      json={"name": "fw", "rules": [rule("22")], "apply_to": apply_to})
    assert r.status_code == 201, r.text
    rules = [rule("22", destination_ips=[], description=None)]
    assert calls == [{server["public_net"]["ipv4"]["ip"]: rules, server["public_net"]["ipv6"]["ip"]: rules}]
    refused(requests.post(f"{base}/v1/firewalls/{r.json()['firewall']['id']}/actions/set_rules", headers=h,
                          json={"rules": [rule("0")]}), "rules[0]")
    assert len(calls) == 1


@pytest.mark.parametrize("name", ["web\n", "web-1\n", "\nweb", "a" * 254, "web_1", ""])
def test_a_server_name_is_a_hostname_matched_whole(local_api, name):
    h, base = local_api.headers, local_api.base
    refused(requests.post(f"{base}/v1/servers", headers=h, json={"name": name, "server_type": "cx23",
                                                                "image": "debian-12", "start_after_create": False}),
            "name")
    sid = requests.post(f"{base}/v1/servers", headers=h, json={
        "name": "ok", "server_type": "cx23", "image": "debian-12", "start_after_create": False}).json()["server"]["id"]
    refused(requests.put(f"{base}/v1/servers/{sid}", headers=h, json={"name": name}), "name")


@pytest.mark.parametrize("labels", [{"k\n": "v"}, {"k": "v\n"}, {"example.com/k\n": "v"}, {"k": "-v"}])
@pytest.mark.parametrize("kind", ["ssh_keys", "firewalls", "servers"])
def test_label_keys_and_values_are_matched_whole(local_api, labels, kind):
    h, base = local_api.headers, local_api.base
    body = {"name": "l", "labels": labels, **{"ssh_keys": {"public_key": new_ed25519().public_openssh},
                                              "firewalls": {},
                                              "servers": {"server_type": "cx23", "image": "debian-12",
                                                          "start_after_create": False}}[kind]}
    refused(requests.post(f"{base}/v1/{kind}", headers=h, json=body), "labels")


def test_a_firewall_name_longer_than_128_characters_is_refused(local_api):
    h, base = local_api.headers, local_api.base
    refused(requests.post(f"{base}/v1/firewalls", headers=h, json={"name": "f" * 129}), "name")
    fid = requests.post(f"{base}/v1/firewalls", headers=h, json={"name": "f" * 128}).json()["firewall"]["id"]
    refused(requests.put(f"{base}/v1/firewalls/{fid}", headers=h, json={"name": "g" * 129}), "name")


def test_rules_stored_before_the_checks_are_dropped_at_start_and_nft_takes_the_rest(local_api, caplog):
    """A state file written by an older local cloud: the start drops what nft would refuse, with a log line."""
    layout = local_api.cloud.layout
    good = rule("22", destination_ips=[], description=None)
    stored = [good, rule("0"), rule("9-1"), rule("99999"), rule("80", source_ips=["10.0.0.300/8"])]
    state = {"next_id": {}, "firewalls": {"40001": {"id": 40001, "name": "old", "labels": {}, "created": "x",
                                                    "rules": stored, "applied_to": [1000001]}},
             "servers": {"1000001": {"id": 1000001, "address": "10.213.99.10", "firewalls": [40001]}}}
    layout.state_file.write_text(json.dumps(state))
    cloud = Cloud(layout, local_api.cloud.storage, Faults())
    with caplog.at_level(logging.WARNING, logger="localcloud"):
        firewalls.repair_stored_rules(cloud)
    assert cloud.store["firewalls"][40001]["rules"] == [good]
    assert len([r for r in caplog.records if "dropped a stored rule" in r.getMessage()]) == 4
    assert Cloud(layout, local_api.cloud.storage, Faults()).store["firewalls"][40001]["rules"] == [good]
    if os.geteuid() == 0:  # nft checks the script without loading it (-c)
        script = hostfirewall.render({"10.213.99.10": cloud.store["firewalls"][40001]["rules"]})
        nft = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
        assert nft.returncode == 0, nft.stderr
