"""The bridge pins a port's IPv6 and the metadata redirect (issue 26), checked as nftables scripts."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from localcloud.guests import bridgefilter, redirect
from localcloud.guests.bridgefilter import Identity, Pin, link_local, mac, render

DUAL = Pin("vb-ik-1000001", Identity(mac(1000001), "10.213.7.10", True, "fd12:3456:789a:1::/64"), 0x4C430001, 40001)
V6_ONLY = Pin("vb-ik-1000002", Identity(mac(1000002), "169.254.7.10", False, "fd12:3456:789a:2::/64"), 0x4C430002,
              40002)


def chain(script: str, name: str) -> list[str]:
    body = script[script.index(f"chain {name} {{"):]
    return [line.strip() for line in body[:body.index("\n  }")].splitlines()[1:]]


def test_the_link_local_address_is_the_eui64_of_the_mac():
    assert str(link_local("96:00:00:0f:42:41")) == "fe80::9400:ff:fe0f:4241"


def test_a_port_passes_its_own_ipv6_and_answers_neighbour_discovery_for_its_own_addresses_only():
    rules = chain(render({"ik-1000001": DUAL}), "from_ik_1000001")
    assert "ip6 saddr { fd12:3456:789a:1::/64, fe80::9400:ff:fe0f:4241 } accept" in rules
    assert "icmpv6 type nd-neighbor-advert @th,64,64 0xfd123456789a0001 accept" in rules
    assert rules.index("icmpv6 type nd-neighbor-advert drop") < rules.index(
        "ip6 saddr { fd12:3456:789a:1::/64, fe80::9400:ff:fe0f:4241 } accept")
    assert "icmpv6 type { nd-router-advert, nd-redirect } drop" in rules
    assert "ip saddr 10.213.7.10 accept" in rules and rules[-1] == "drop"


def test_a_port_without_ipv4_of_its_own_reaches_dhcp_and_the_metadata_service_only():
    rules = chain(render({"ik-1000002": V6_ONLY}), "from_ik_1000002")
    v4 = [r for r in rules if r.startswith("ip ") or r.startswith("arp ")]
    assert v4 == ["ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
                  "arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether 96:00:00:0f:42:42 "
                  "arp saddr ip 169.254.7.10 accept",
                  "ip saddr 169.254.7.10 ip daddr 169.254.169.254 tcp dport 80 meta mark set 0x4c430002 accept",
                  "ip saddr 169.254.7.10 udp sport 68 udp dport 67 accept"]


def test_each_mark_goes_to_its_own_listener_and_listeners_take_only_redirected_connections():
    script = redirect.render([(DUAL.mark, DUAL.metadata_port), (V6_ONLY.mark, V6_ONLY.metadata_port)])
    assert "meta mark 0x4c430001 ip daddr 169.254.169.254 tcp dport 80 dnat to" in script
    assert script.count("dnat to") == 2
    assert "tcp dport { 40001, 40002 } ct status dnat accept" in script
    assert "tcp dport { 40001, 40002 } drop" in script


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root")
def test_the_scripts_are_valid_nftables():
    pins = {"ik-1000001": DUAL, "ik-1000002": V6_ONLY}
    script = render(pins) + redirect.render([(p.mark, p.metadata_port) for p in pins.values()])
    result = subprocess.run(["nft", "-c", "-f", "-"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_a_started_guest_has_the_host_forget_the_mac_last_seen_on_its_addresses(monkeypatch):
    calls = []
    monkeypatch.setattr(bridgefilter, "run", lambda cmd, **kw: calls.append(cmd))
    bridgefilter.forget_neighbours(V6_ONLY.identity)
    assert calls == [["ip", "-4", "neigh", "flush", "to", "169.254.7.10", "dev", bridgefilter.BRIDGE],
                     ["ip", "-6", "neigh", "flush", "to", "fd12:3456:789a:2::/64", "dev", bridgefilter.BRIDGE]]
