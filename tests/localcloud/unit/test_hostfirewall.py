"""Attached firewalls become the host's nftables rules in front of each guest (issue 11, item 7)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import requests

from localcloud.host.hostfirewall import TABLE, render

SSH = {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0", "::/0"], "description": None}
WG = {"direction": "in", "protocol": "udp", "port": "41641", "source_ips": ["10.0.0.0/8"], "description": None}
V6_ONLY = {"direction": "in", "protocol": "icmp", "port": None, "source_ips": ["::/0"], "description": None}


def test_inbound_rules_become_accepts_before_a_drop():
    script = render({"10.213.7.10": [SSH, WG, V6_ONLY], "10.213.7.11": []})
    chain = script[script.index("chain in_10_213_7_10"):]
    assert chain.splitlines()[1:4] == ["    tcp dport 22 accept", "    ip saddr { 10.0.0.0/8 } udp dport 41641 accept",
                                       "    drop"]
    assert "chain in_10_213_7_11 {\n    drop\n  }" in script  # a firewall without in rules blocks all inbound
    assert "ct state established,related accept" in script  # replies to what the guest opened still pass


def test_what_the_platform_sends_passes_whatever_the_rules():
    """The host's DHCP answers and neighbour discovery reach a guest with a deny-all firewall (as on Hetzner);
    only in the output hook: a guest's forwarded packets never pass as the platform's."""
    script = render({"10.213.7.11": []})
    output = next(line for line in script.splitlines() if "hook output" in line)
    forward = next(line for line in script.splitlines() if "hook forward" in line)
    assert output.index("udp sport 67 udp dport 68 accept") < output.index("jump guests")
    assert "nd-neighbor-advert" in output and "dport 68" not in forward and "nd-" not in forward


def test_a_servers_ipv6_net_gets_the_rules_ipv6_sources():
    script = render({"fd00:1:2:3::/64": [SSH, WG, V6_ONLY, {**WG, "source_ips": ["fd00:9::/64"]}]})
    assert "    ip6 daddr fd00:1:2:3::/64 jump in_fd00_1_2_3___64" in script
    chain = script[script.index("chain in_fd00_1_2_3___64"):]
    assert chain.splitlines()[1:5] == ["    tcp dport 22 accept", "    meta l4proto ipv6-icmp accept",
                                       "    ip6 saddr { fd00:9::/64 } udp dport 41641 accept", "    drop"]


def test_no_attached_firewall_means_no_table():
    assert render({}) == f"table inet {TABLE}\ndelete table inet {TABLE}\n"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root")
def test_the_script_is_valid_nftables():
    script = render({"10.213.7.10": [SSH, WG, V6_ONLY, {**SSH, "port": "8000-8080", "protocol": "udp"}],
                     "fd00:1:2:3::/64": [SSH, WG, V6_ONLY]})
    result = subprocess.run(["nft", "-c", "-f", "-"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_the_cloud_hands_the_attached_rules_to_the_host(local_api):
    seen = []
    local_api.cloud.filter_guests = seen.append
    h, base = local_api.headers, local_api.base
    server = requests.post(f"{base}/v1/servers", headers=h, json={
        "name": "fw-target", "server_type": "cx23", "image": "debian-12", "start_after_create": False}).json()["server"]
    out_rule = {"direction": "out", "protocol": "tcp", "port": "80", "destination_ips": ["0.0.0.0/0"]}
    fw = requests.post(f"{base}/v1/firewalls", headers=h, json={
        "name": "fw", "rules": [SSH, out_rule],
        "apply_to": [{"type": "server", "server": {"id": server["id"]}}]}).json()["firewall"]
    rules = [{**SSH, "destination_ips": []}]
    assert seen[-1] == {server["public_net"]["ipv4"]["ip"]: rules, server["public_net"]["ipv6"]["ip"]: rules}
    requests.post(f"{base}/v1/firewalls/{fw['id']}/actions/remove_from_resources", headers=h, json={
        "remove_from": [{"type": "server", "server": {"id": server["id"]}}]})
    assert seen[-1] == {}
