"""An attached firewall filters what reaches the server, as on Hetzner (issue 11, item 7).

The guest has no firewall of its own (no UFW in the system image), so only the local cloud's
enforcement on the host can make a listening port unreachable.
"""

from __future__ import annotations

import socket
import time

import pytest
from hcloud.firewalls import FirewallResource, FirewallRule

from imagekit.host import ssh
from tests.localcloud.conftest import boot_server

pytestmark = pytest.mark.e2e
ANY = ["0.0.0.0/0", "::/0"]


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_a_port_outside_the_rules_is_unreachable_until_a_rule_allows_it(cloud_unchanged, keypair):
    client = cloud_unchanged
    server, key = boot_server(client, keypair, "fw-enforce")
    address = server.public_net.ipv4.ip
    conn = ssh.wait_for_ssh(address, keypair, pin=None, deadline=time.monotonic() + 120)
    code, out, err = ssh.run(conn, "command -v ufw || echo no-ufw; "
                                   "systemd-run --unit=probe python3 -m http.server 8080 >/dev/null 2>&1; sleep 1")
    conn.close()
    assert "no-ufw" in out, out + err
    assert reachable(address, 8080)

    fw = client.firewalls.create(name="fw-enforce", rules=[
        FirewallRule(direction="in", protocol="tcp", port="22", source_ips=ANY)],
        resources=[FirewallResource(type="server", server=server)]).firewall
    try:
        assert not reachable(address, 8080), "a port outside the firewall's rules answered"
        assert reachable(address, 22)
        fw.set_rules([FirewallRule(direction="in", protocol="tcp", port="22", source_ips=ANY),
                      FirewallRule(direction="in", protocol="tcp", port="8080", source_ips=ANY)])
        assert reachable(address, 8080), "a port the firewall allows did not answer"
    finally:
        for action in fw.remove_from_resources([FirewallResource(type="server", server=server)]):
            action.wait_until_finished(30)
    assert reachable(address, 8080)
    fw.delete()
    client.servers.delete(server).wait_until_finished(120)
    key.delete()
