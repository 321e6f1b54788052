"""Standard clients work unchanged: Debian's `hcloud` CLI drives the local cloud (``hcloud_cli``: the local
cloud's conftest; its arm server is made in ``test_arm``)."""

from __future__ import annotations

import json
import time

import pytest

from imagekit.host import ssh
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def test_hcloud_cli_server_lifecycle(cloud_unchanged, hcloud_cli, keypair, tmp_path):
    assert "cx23" in hcloud_cli("server-type", "list")
    assert "debian-12" in hcloud_cli("image", "list", "--type", "system")
    (tmp_path / "key.pub").write_text(keypair.public_openssh)
    hcloud_cli("ssh-key", "create", "--name", "cli-key", "--public-key-from-file", str(tmp_path / "key.pub"))
    hcloud_cli("server", "create", "--name", "cli-server", "--type", "cx23", "--image", "debian-12",
               "--ssh-key", "cli-key", "--label", "via=cli")
    (server,) = json.loads(hcloud_cli("server", "list", "-o", "json", "-l", "via=cli"))
    assert server["status"] == "running"
    conn = ssh.wait_for_ssh(server["public_net"]["ipv4"]["ip"], keypair, pin=None, deadline=time.monotonic() + 120)
    assert ssh.run(conn, "hostname")[1].strip() == "cli-server"
    conn.close()
    hcloud_cli("server", "shutdown", "cli-server")
    hcloud_cli("server", "delete", "cli-server")
    hcloud_cli("ssh-key", "delete", "cli-key")


def test_hcloud_cli_network_with_an_attached_server_and_a_placement_group(cloud_unchanged, hcloud_cli, keypair,
                                                                          tmp_path):
    (tmp_path / "key.pub").write_text(keypair.public_openssh)
    hcloud_cli("ssh-key", "create", "--name", "cli-net-key", "--public-key-from-file", str(tmp_path / "key.pub"))
    hcloud_cli("network", "create", "--name", "cli-net", "--ip-range", "10.0.0.0/16")
    hcloud_cli("network", "add-subnet", "cli-net", "--network-zone", "eu-central", "--type", "cloud",
               "--ip-range", "10.0.1.0/24")
    hcloud_cli("placement-group", "create", "--name", "cli-pg", "--type", "spread")
    hcloud_cli("server", "create", "--name", "cli-net-server", "--type", "cx23", "--image", "debian-12",
               "--ssh-key", "cli-net-key", "--network", "cli-net", "--placement-group", "cli-pg")
    server = json.loads(hcloud_cli("server", "describe", "cli-net-server", "-o", "json"))
    network = json.loads(hcloud_cli("network", "describe", "cli-net", "-o", "json"))
    # Not `placement-group describe -o json`: CLI 1.30 looks for the key "placement group" and fails on Hetzner too.
    group = next(g for g in json.loads(hcloud_cli("placement-group", "list", "-o", "json")) if g["name"] == "cli-pg")
    assert [(p["network"], p["ip"]) for p in server["private_net"]] == [(network["id"], "10.0.1.1")]
    assert network["servers"] == [server["id"]] and network["subnets"][0]["gateway"] == "10.0.0.1"
    assert server["placement_group"]["id"] == group["id"] and group["servers"] == [server["id"]]
    conn = ssh.wait_for_ssh(server["public_net"]["ipv4"]["ip"], keypair, pin=None, deadline=time.monotonic() + 120)
    try:
        assert wait_for(lambda: "10.0.1.1/32" in ssh.run(conn, "ip -4 -o addr show dev enp7s0")[1], 30,
                        what="the private interface's lease")
    finally:
        conn.close()
    hcloud_cli("server", "delete", "cli-net-server")
    hcloud_cli("placement-group", "delete", "cli-pg")
    hcloud_cli("network", "delete", "cli-net")
    hcloud_cli("ssh-key", "delete", "cli-net-key")
def test_hcloud_cli_creates_an_ipv6_only_server(cloud_unchanged, hcloud_cli, keypair, tmp_path):
    """`--without-ipv4`, as an operator saving the IPv4 fee types it; the server is reached over IPv6."""
    (tmp_path / "key.pub").write_text(keypair.public_openssh)
    hcloud_cli("ssh-key", "create", "--name", "cli-v6-key", "--public-key-from-file", str(tmp_path / "key.pub"))
    hcloud_cli("server", "create", "--name", "cli-v6", "--type", "cx23", "--image", "debian-12",
               "--ssh-key", "cli-v6-key", "--without-ipv4")
    server = json.loads(hcloud_cli("server", "describe", "cli-v6", "-o", "json"))
    assert server["public_net"]["ipv4"] is None
    address = server["public_net"]["ipv6"]["ip"].replace("::/64", "::1")
    conn = ssh.wait_for_ssh(address, keypair, pin=None, deadline=time.monotonic() + 120)
    assert ssh.run(conn, "hostname")[1].strip() == "cli-v6"
    conn.close()
    hcloud_cli("server", "delete", "cli-v6")
    hcloud_cli("ssh-key", "delete", "cli-v6-key")
