"""The operator's own labels (--label) and SSH sources (--ssh-from), checked before anything exists: Hetzner's label
rules (the same verdicts as the local cloud's checker, which follows Hetzner's documentation), imagekit's own keys
refused, status shown only the operator's; --ssh-from as a sorted set whose firewall narrows only SSH. --no-ipv4's
setting and its IPv6 route check."""

from __future__ import annotations

import pytest

from imagekit import profiles, runid, settings, ttl
from imagekit.bake import IMAGE_LABEL
from imagekit.build_inputs import LABEL as INPUTS_LABEL
from imagekit.bundledigest import BUNDLE_LABEL, CODE_LABEL
from imagekit.cloud import family, leases, userlabels
from imagekit.errors import InputError
from imagekit.fleet.roll.plan import ROLLING
from imagekit.host import hostkey
from imagekit.pool import members
from imagekit.provision.halfmade import REBUILDING
from imagekit.steps import firewall, sshfrom
from imagekit.target import Target
from localcloud.api import labels as hetzner
from localcloud.errors import APIError

SAMPLES = [("team", "payments"), ("Team_1.x", ""), ("example.com/owner", "ops-1"), ("a" * 63, "b" * 63),
           ("a" * 64, "x"), ("x", "b" * 64), ("-team", "x"), ("team-", "x"), ("te am", "x"), ("team", "a b"),
           ("team", "-x"), ("Example.com/owner", "x"), ("a..b/owner", "x"), ("/owner", "x"), ("team", "x\n"),
           ("", "x"), ("k", "ok."), ("k", "ok_1")]


@pytest.mark.parametrize("key, value", SAMPLES)
def test_a_label_passes_exactly_when_hetzners_rules_allow_it(key, value):
    try:
        hetzner.validate({key: value})
        allowed = True
    except APIError:
        allowed = False
    try:
        userlabels.check(key, value)
        ours = True
    except InputError as exc:
        ours = False
        assert f"--label {key}={value}" in str(exc) and "not allowed" in str(exc)
    assert ours == allowed


def test_every_key_imagekit_sets_is_refused_and_named():
    for key in (runid.LABEL, leases.KEY, hostkey.LABEL, members.KEY_LABEL, "role", "pool", ROLLING,
                REBUILDING.key, INPUTS_LABEL, sshfrom.LABEL, ttl.LABEL, CODE_LABEL, BUNDLE_LABEL,
                IMAGE_LABEL + "node-22", family.LABEL, "managed-by", "agent-id", "deployment", "mode", "profile"):
        with pytest.raises(InputError, match=f"'{key}' is one of imagekit's own label keys"):
            userlabels.parse([f"{key}=x"])


def test_labels_parse_repeat_and_refuse_what_is_not_key_value():
    assert userlabels.parse(["team=payments", "cost-center=42", "team=payments"]) == \
        {"team": "payments", "cost-center": "42"}
    assert userlabels.parse(["empty="]) == {"empty": ""}
    with pytest.raises(InputError, match="give KEY=VALUE"):
        userlabels.parse(["team"])
    with pytest.raises(InputError, match="given twice"):
        userlabels.parse(["team=a", "team=b"])


def test_status_shows_only_the_operators_labels():
    assert userlabels.operator_labels({"managed-by": "imagekit", "role": "agent", "run": "r", "host-key": "x",
                                       "team": "payments", "example.com/owner": "ops"}) == \
        {"example.com/owner": "ops", "team": "payments"}
    assert userlabels.operator_labels(None) == {}


def test_ssh_sources_are_a_sorted_set_with_a_stable_name():
    assert sshfrom.parse(None) == ()
    given = sshfrom.parse("2001:db8::/48, 10.0.0.7,192.168.1.0/24,10.0.0.7/32")
    assert given == ("10.0.0.7/32", "192.168.1.0/24", "2001:db8::/48")
    assert sshfrom.digest(given) == sshfrom.digest(sshfrom.parse("192.168.1.0/24,2001:db8::/48,10.0.0.7"))
    assert sshfrom.digest(given) != sshfrom.digest(sshfrom.parse("192.168.1.0/24"))
    assert sshfrom.parse("10.1.2.3/8") == ("10.0.0.0/8",)
    for bad in ("10.0.0.300", "example.com", "10.0.0.0/33", ","):
        with pytest.raises(InputError, match="is not an address or network"):
            sshfrom.parse(bad)


def test_the_source_firewall_narrows_only_ssh():
    profile = profiles.load("agent")
    wide = {(r.protocol, r.port): r.source_ips for r in firewall.rules(profile)}
    narrow = {(r.protocol, r.port): r.source_ips for r in firewall.rules(profile, ("10.0.0.0/8",))}
    assert narrow.pop(("tcp", "22")) == ["10.0.0.0/8"]
    assert wide.pop(("tcp", "22")) == ["0.0.0.0/0", "::/0"]
    assert narrow == wide


def test_ipv4_is_the_flag_when_given_else_the_setting(monkeypatch):
    monkeypatch.delenv("IMAGEKIT_IPV4", raising=False)
    assert settings.ipv4(None) is True
    monkeypatch.setenv("IMAGEKIT_IPV4", "0")
    assert settings.ipv4(None) is False and settings.ipv4(True) is True
    monkeypatch.setenv("IMAGEKIT_IPV4", "maybe")
    with pytest.raises(settings.SettingsError, match="IMAGEKIT_IPV4 'maybe'"):
        settings.ipv4(None)


def test_no_ipv6_route_is_an_error_naming_the_fix():
    local = Target("http://127.0.0.1:1/v1", "t", local=True)
    with pytest.raises(InputError, match="no IPv6 route to fe80::1 .*GitHub-hosted runners have no IPv6"):
        family.require_ipv6_route(local, "fe80::1")  # link-local without an interface: the kernel has no route
    hetzner = Target("https://api.hetzner.cloud/v1", "t", local=False)
    with pytest.raises(InputError, match="leaves from ::1, a private address"):
        family.require_ipv6_route(hetzner, "::1")  # routed, but from an address Hetzner's servers cannot answer
    family.require_ipv6_route(local, "::1")


def _server(client, ipv4: bool, firewall_ids: list[int]):
    from hcloud.servers import BoundServer

    return BoundServer(client.servers, {
        "id": 7, "name": "agent-1", "labels": {"managed-by": "imagekit", "role": "agent", "team": "payments"},
        "server_type": {"id": 1, "name": "cx23", "architecture": "x86"}, "location": {"id": 1, "name": "fsn1"},
        "public_net": {"ipv4": {"id": 3, "ip": "203.0.113.7", "blocked": False, "dns_ptr": ""} if ipv4 else None,
                       "ipv6": {"id": 4, "ip": "2001:db8:1::/64", "blocked": False, "dns_ptr": []},
                       "floating_ips": [], "firewalls": [{"id": i, "status": "applied"} for i in firewall_ids]}})


def test_a_rolls_replacement_keeps_the_old_hosts_firewalls_and_address_family():
    from hcloud import Client
    from hcloud.firewalls import BoundFirewall
    from hcloud.images import BoundImage

    from imagekit.fleet.roll.plan import Move, RollOptions
    from imagekit.fleet.roll.run import Shared, replacement_plan

    client = Client(token="unused")
    profile_fw = BoundFirewall(client.firewalls, {"id": 1}, complete=False)
    shared = Shared(target=Target("http://127.0.0.1:1/v1", "t", local=True), client=client, options=RollOptions(),
                    profile=profiles.load("agent"), run_id="r", operator_key=None, keypair=None, tailnet=None, tags=(),
                    firewall=profile_fw, groups={})
    image = BoundImage(client.images, {"id": 5})
    narrowed = replacement_plan(shared, Move(name="agent-1", old=_server(client, False, [42]), target=image)).spec
    assert [f.id for f in narrowed.firewalls] == [42] and narrowed.ipv4 is False
    plain = replacement_plan(shared, Move(name="agent-1", old=_server(client, True, []), target=image)).spec
    assert [f.id for f in plain.firewalls] == [1] and plain.ipv4 is True
