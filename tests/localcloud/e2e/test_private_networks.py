"""Private networks on real guests (issue 26, point 3): guests on one network reach each other over it, a guest of
another network does not (not even with routes of its own), nothing reaches the host through a network; addresses
come by DHCP (a /32, the network's first address as gateway); a live attach and detach on a running guest; the
attachments survive a reboot and a restart of the local cloud; nothing of a network lives in the host's own network
namespace, and cloud-down removes every network namespace it made.

Network A is 10.0.0.0/16 (subnet 10.0.1.0/24), B 10.1.0.0/16 (subnet 10.1.1.0/24): a1 and a2 on A, c on B.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from hcloud.images import Image
from hcloud.networks import NetworkSubnet
from hcloud.server_types import ServerType

from imagekit.host import ssh
from localcloud import client as control
from localcloud.host.privatenet import existing
from localcloud.paths import DEFAULT_API_PORT, HOST_ADDRESS
from tests.conftest import changes, inventory, wait_for

pytestmark = pytest.mark.e2e


def reaches(conn, address: str, port: int = 22) -> bool:
    """Whether a TCP connection from the guest to ``address:port`` opens within 3 s."""
    return ssh.run(conn, f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}'")[0] == 0


def private_ipv4(conn, ifname: str) -> list[dict]:
    return [a for link in json.loads(ssh.run(conn, f"ip -j -4 addr show dev {ifname}")[1] or "[]")
            for a in link["addr_info"]]


def routes(conn, ifname: str) -> list[dict]:
    return json.loads(ssh.run(conn, f"ip -j -4 route show dev {ifname}")[1] or "[]")


@pytest.fixture(scope="module")
def guests(client):
    """Networks A and B, guests a1 and a2 on A and c on B, booted; everything deleted at the end (checked)."""
    from imagekit.host.keys import new_ed25519

    before = inventory(client)
    keypair = new_ed25519("net-test")
    a = client.networks.create(name="net-a", ip_range="10.0.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")])
    b = client.networks.create(name="net-b", ip_range="10.1.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.1.1.0/24", network_zone="eu-central")])
    key = client.ssh_keys.create(name="net-test", public_key=keypair.public_openssh)
    made = {}
    for name, network in (("a1", a), ("a2", a), ("c", b)):
        made[name] = client.servers.create(name=name, server_type=ServerType(name="cx23"),
                                           image=Image(name="debian-12"), ssh_keys=[key], networks=[network])
    for resp in made.values():
        resp.action.wait_until_finished(120)
    servers = {name: client.servers.get_by_id(resp.server.id) for name, resp in made.items()}
    conns = {name: ssh.wait_for_ssh(s.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
             for name, s in servers.items()}
    yield {"a": a, "b": b, "servers": servers, "conns": conns, "keypair": keypair}
    for conn in conns.values():
        conn.close()
    for server in servers.values():
        client.servers.delete(server).wait_until_finished(120)
    a.delete()
    b.delete()
    key.delete()
    assert changes(before, inventory(client)) == {}


def test_guests_on_one_network_reach_each_other_and_no_one_else_does(guests):
    a1, a2, c = (guests["conns"][n] for n in ("a1", "a2", "c"))
    wait_for(lambda: private_ipv4(a1, "enp7s0") and private_ipv4(a2, "enp7s0") and private_ipv4(c, "enp7s0"), 30,
             what="the private interfaces' DHCP leases")
    a2_ip = guests["servers"]["a2"].private_net[0].ip
    assert reaches(a1, a2_ip)
    assert not reaches(c, a2_ip)
    # c's root routes A's range and the host's API port through its network's gateway (the API port alone, by a
    # rule: this SSH session must keep its way back): B's namespace routes nothing to A, nor to the host.
    ssh.must(c, "ip route add 10.0.0.0/16 via 10.1.0.1 dev enp7s0 && ip route add default via 10.1.0.1 dev enp7s0 "
                f"table 100 && ip rule add to {HOST_ADDRESS} ipproto tcp dport {DEFAULT_API_PORT} table 100",
             "routes through B's gateway")
    try:
        assert not reaches(c, a2_ip)
        assert not reaches(c, HOST_ADDRESS, DEFAULT_API_PORT)
    finally:
        ssh.run(c, f"ip rule del to {HOST_ADDRESS} ipproto tcp dport {DEFAULT_API_PORT} table 100; "
                   "ip route flush table 100; ip route del 10.0.0.0/16 via 10.1.0.1")


def test_the_private_interface_got_its_address_by_dhcp_with_the_networks_first_address_as_gateway(guests):
    a1, server = guests["conns"]["a1"], guests["servers"]["a1"]
    (addr,) = wait_for(lambda: private_ipv4(a1, "enp7s0"), 30, what="a1's lease")
    assert (addr["local"], addr["prefixlen"]) == (server.private_net[0].ip, 32)
    assert addr.get("dynamic") is True  # a lease, not a static address
    assert {(r["dst"], r.get("gateway")) for r in routes(a1, "enp7s0")} >= {("10.0.0.0/16", "10.0.0.1"),
                                                                            ("10.0.0.1", None)}
    assert "DHCP4 via 10.0.0.1" in ssh.run(a1, "networkctl status enp7s0 --no-pager")[1]
    link = json.loads(ssh.run(a1, "ip -j link show dev enp7s0")[1])[0]
    assert (link["address"], link["mtu"]) == (server.private_net[0].mac_address, 1450)


def test_nothing_of_a_network_is_in_the_hosts_own_namespace(guests):
    host = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    assert "10.0." not in host and "10.1." not in host
    host_routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True,
                                 check=True).stdout
    assert "10.0.0.0/16" not in host_routes and "10.1.0.0/16" not in host_routes


def connects_from(conn, source: str, address: str, port: int = 22) -> bool:
    """Whether the guest opens a TCP connection to ``address:port`` from its address ``source``."""
    probe = (f"import socket; socket.create_connection(({address!r}, {port}), timeout=3, "
             f"source_address=({source!r}, 0))")
    return ssh.run(conn, f"python3 -c \"{probe}\"")[0] == 0


def test_a_live_attach_and_detach_on_a_running_guest_whose_port_passes_only_its_own_addresses(client, guests):
    c, server, a = guests["conns"]["c"], guests["servers"]["c"], guests["a"]
    a2_ip = guests["servers"]["a2"].private_net[0].ip
    server.attach_to_network(a, ip="10.0.1.50", alias_ips=["10.0.1.51"]).wait_until_finished(30)
    (addr,) = wait_for(lambda: private_ipv4(c, "enp8s0"), 30, what="the live attachment's lease")
    assert addr["local"] == "10.0.1.50"
    assert reaches(c, a2_ip)
    # Alias IPs are configured by hand, as on Hetzner, and pass the port's pin; an address of its own choosing
    # (here another server's) does not.
    ssh.must(c, "ip addr add 10.0.1.51/32 dev enp8s0 && ip addr add 10.0.1.77/32 dev enp8s0", "extra addresses")
    assert connects_from(c, "10.0.1.51", a2_ip)
    assert not connects_from(c, "10.0.1.77", a2_ip)
    assert [p.ip for p in client.servers.get_by_id(server.id).private_net] == ["10.1.1.1", "10.0.1.50"]
    server.detach_from_network(a).wait_until_finished(30)
    wait_for(lambda: ssh.run(c, "ip link show dev enp8s0")[0] != 0, 10, what="the interface to vanish")
    assert not reaches(c, a2_ip)
    assert [p.ip for p in client.servers.get_by_id(server.id).private_net] == ["10.1.1.1"]
    assert server.id not in [s.id for s in client.networks.get_by_id(a.id).servers]


def test_attachments_survive_a_reboot_and_a_restart_of_the_local_cloud(client, guests):
    a1_ip, a2_ip = (guests["servers"][n].private_net[0].ip for n in ("a1", "a2"))
    server, keypair = guests["servers"]["a1"], guests["keypair"]
    guests["conns"]["a1"].close()
    server.reboot().wait_until_finished(30)
    time.sleep(2)  # the reboot is under way once systemd got the signal
    conn = guests["conns"]["a1"] = ssh.wait_for_ssh(server.public_net.ipv4.ip, keypair, pin=None,
                                                     deadline=time.monotonic() + 120)
    wait_for(lambda: private_ipv4(conn, "enp7s0"), 30, what="the lease after a reboot")
    assert reaches(conn, a2_ip)
    for name in guests["conns"]:
        guests["conns"][name].close()
    assert control.down() is True
    assert existing() == []  # cloud-down removed every network namespace it made
    control.up(progress=lambda m: None)
    for name, s in guests["servers"].items():
        guests["conns"][name] = ssh.wait_for_ssh(s.public_net.ipv4.ip, keypair, pin=None,
                                                 deadline=time.monotonic() + 120)
    a2 = guests["conns"]["a2"]
    wait_for(lambda: private_ipv4(a2, "enp7s0"), 30, what="the lease after a restart")
    assert reaches(a2, a1_ip)
