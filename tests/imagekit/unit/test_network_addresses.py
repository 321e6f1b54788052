"""Private networks (--network, --ssh-via): the address imagekit talks to a server on (its private one on the network
its ssh-via label names, else its public one), what is wrong with the options alone, the route check that runs
before anything is created, a network that does not exist, the label and networks a create sends, and a roll's
replacement keeping its host's networks. The end-to-end proof is tests/imagekit/e2e/test_bastion_network.py."""

from __future__ import annotations

import pytest
from hcloud import Client
from hcloud.images import BoundImage
from hcloud.networks import BoundNetwork
from hcloud.server_types import BoundServerType
from hcloud.servers import BoundServer

from imagekit import profiles, settings
from imagekit.cloud import lookups, networks
from imagekit.cloud.servers import SSH_VIA, address, private_address
from imagekit.cloud.spec import ServerSpec
from imagekit.errors import CloudError, InputError
from imagekit.target import Target

CLIENT = Client(token="unused")


def network(ident: int, ip_range: str = "10.0.0.0/16") -> BoundNetwork:
    return BoundNetwork(CLIENT.networks, {"id": ident, "name": f"net-{ident}", "ip_range": ip_range})


def server(labels: dict[str, str] | None = None, ipv4: bool = True) -> BoundServer:
    return BoundServer(CLIENT.servers, {
        "id": 7, "name": "agent-1", "labels": {"managed-by": "imagekit", **(labels or {})},
        "server_type": {"id": 1, "name": "cx23", "architecture": "x86"}, "location": {"id": 1, "name": "fsn1"},
        "public_net": {"ipv4": {"id": 3, "ip": "203.0.113.7", "blocked": False, "dns_ptr": ""} if ipv4 else None,
                       "ipv6": {"id": 4, "ip": "2001:db8:1::/64", "blocked": False, "dns_ptr": []},
                       "floating_ips": [], "firewalls": []},
        "private_net": [{"network": 11, "ip": "10.0.1.5", "alias_ips": [], "mac_address": "86:00:00:00:00:01"},
                        {"network": 12, "ip": "10.1.1.9", "alias_ips": [], "mac_address": "86:00:00:00:00:02"}]})


def test_a_server_is_talked_to_on_the_network_its_label_names_else_on_its_public_address():
    assert address(server()) == "203.0.113.7"
    assert address(server(ipv4=False)) == "2001:db8:1::1"
    assert address(server({SSH_VIA: "12"})) == "10.1.1.9"
    assert address(server({SSH_VIA: "11"}, ipv4=False)) == "10.0.1.5"
    assert address(server({SSH_VIA: "13"})) is None  # not (yet) on that network: never its public address instead
    assert private_address(server()) == "10.0.1.5" and private_address(server(), "12") == "10.1.1.9"


def test_ssh_via_is_checked_alone():
    networks.check((), "public")
    networks.check(("office",), "private")
    with pytest.raises(InputError, match="--ssh-via 'vpn': choose public .* or private"):
        networks.check(("office",), "vpn")
    with pytest.raises(InputError, match="--ssh-via private reaches hosts on their private network: name it with "
                                         "--network NAME"):
        networks.check((), "private")


def test_the_settings_give_networks_and_the_way_in(monkeypatch):
    assert settings.networks(None, None) == ((), "public")
    monkeypatch.setenv("IMAGEKIT_NETWORK", "office, 42")
    monkeypatch.setenv("IMAGEKIT_SSH_VIA", "private")
    assert settings.networks(None, None) == (("office", "42"), "private")
    assert settings.networks(["lab", "a,b"], "public") == (("lab", "a", "b"), "public")


def test_no_route_into_the_network_fails_naming_where_to_run():
    with pytest.raises(InputError, match=r"--ssh-via private: this machine has no route to 203\.0\.113\.0/24.*: run "
                                         r"imagekit on a host in network net-1 \(a bastion or a self-hosted runner"):
        networks.require_route(network(1, "203.0.113.0/24"))  # TEST-NET-3: this machine has no address in it
    networks.require_route(network(2, "127.0.0.0/8"))  # routed from 127.0.0.1, an address in the range


def test_a_network_that_does_not_exist_is_named_with_the_fix(api):
    client = Client(token=api.target.token, api_endpoint=api.target.endpoint)
    assert lookups.networks(client, ()) == ()
    with pytest.raises(CloudError, match="--network 'office': no such network in this project .*create it first"):
        lookups.networks(client, ("office",))
    with pytest.raises(CloudError, match="--network 'office'"):
        networks.attach(client, ("office",), "private")


def test_a_create_sends_the_networks_and_labels_the_one_reached_on():
    spec = ServerSpec(server_type=BoundServerType(CLIENT.server_types, {"id": 1, "name": "cx23"}),
                      image=BoundImage(CLIENT.images, {"id": 5}), labels={"role": "agent"},
                      networks=(network(11), network(12)), ssh_network=network(12))
    assert [n.id for n in spec.create_arguments(None)["networks"]] == [11, 12]
    assert spec.server_labels == {"role": "agent", SSH_VIA: "12"}
    plain = ServerSpec(server_type=spec.server_type, image=spec.image)
    assert "networks" not in plain.create_arguments(None) and SSH_VIA not in plain.server_labels
    assert networks.same(server({SSH_VIA: "12"}), spec) and not networks.same(server(), spec)
    assert not networks.same(server({SSH_VIA: "12"}), plain)


def test_a_rolls_replacement_keeps_its_hosts_networks():
    from imagekit.fleet.roll.plan import Move, RollOptions
    from imagekit.fleet.roll.run import Shared, replacement_plan

    shared = Shared(target=Target("http://127.0.0.1:1/v1", "t", local=True), client=CLIENT, options=RollOptions(),
                    profile=profiles.load("agent"), run_id="r", operator_key=None, keypair=None, tailnet=None, tags=(),
                    firewall=None, groups={})
    image = BoundImage(CLIENT.images, {"id": 5})
    spec = replacement_plan(shared, Move(name="agent-1", old=server({SSH_VIA: "12"}), target=image)).spec
    assert [n.id for n in spec.networks] == [11, 12] and spec.ssh_network is not None and spec.ssh_network.id == 12
    plain = replacement_plan(shared, Move(name="agent-1", old=server(), target=image)).spec
    assert [n.id for n in plain.networks] == [11, 12] and plain.ssh_network is None
