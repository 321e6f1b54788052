"""The bridge pins identities (issue 23, item 2): a guest that claims another guest's address, or the host's,
and announces it receives nothing and breaks nothing; and traffic between guests obeys the attached firewalls.

A guest's root holds CAP_NET_ADMIN in its own network namespace, so the hostile guest here adds the victim's
and the host's addresses to its interface and sends gratuitous ARP for them from a raw socket, with its own MAC
and with the victim's, while it listens for any frame meant for the victim.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from hcloud.firewalls import FirewallResource, FirewallRule

from imagekit.host import ssh
from localcloud.guests.bridgefilter import mac
from localcloud.paths import BRIDGE, DEFAULT_API_PORT, HOST_ADDRESS, MACHINE_PREFIX
from tests.localcloud.conftest import boot_server

pytestmark = pytest.mark.e2e
ATTACK_SECONDS = 25

# Claims ADDRESSES as MAC (gratuitous ARP, request and reply, every 0.1 s) for SECONDS, while counting the
# frames it receives that are meant for VICTIM_IP / VICTIM_MAC; prints {"sent": n, "seen": n}.
HOSTILE = r"""
import json, socket, struct, sys, time
victim_ip, victim_mac, host_ip, seconds = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), sys.argv[3], \
    float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("host0", 0))
own_mac = s.getsockname()[4]
s.settimeout(0.05)
sent = seen = 0
end = time.monotonic() + seconds
next_send = 0.0
while time.monotonic() < end:
    if time.monotonic() >= next_send:
        for src in (own_mac, victim_mac):
            for ip in (victim_ip, host_ip):
                for op in (1, 2):
                    a = socket.inet_aton(ip)
                    s.send(b"\xff" * 6 + src + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
                           + src + a + b"\x00" * 6 + a)
                    sent += 1
        next_send = time.monotonic() + 0.1
    try:
        frame, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    if frame[:6] == victim_mac or (frame[12:14] == b"\x08\x00" and frame[30:34] == socket.inet_aton(victim_ip)):
        seen += 1
print(json.dumps({"sent": sent, "seen": seen}))
"""


def neighbour(address: str) -> str | None:
    """The MAC the host's ARP table holds for ``address`` on the bridge."""
    out = subprocess.run(["ip", "-j", "neigh", "show", address, "dev", BRIDGE], capture_output=True, text=True)
    entries = [e for e in json.loads(out.stdout or "[]") if e.get("lladdr")]
    return entries[0]["lladdr"] if entries else None


def bridge_mac() -> str:
    out = subprocess.run(["ip", "-j", "link", "show", "dev", BRIDGE], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]["address"]


@pytest.fixture
def two_guests(cloud_unchanged, keypair):
    """Two running servers with one SSH key, deleted afterwards."""
    first, key = boot_server(cloud_unchanged, keypair, "pin-a")
    second, _ = boot_server(cloud_unchanged, keypair, "pin-b", key=key)
    yield first, second
    for server in (first, second):
        cloud_unchanged.servers.delete(server).wait_until_finished(120)
    key.delete()


def test_a_guest_claiming_another_guests_and_the_hosts_address_receives_nothing_and_breaks_nothing(
        two_guests, keypair):
    attacker, victim = two_guests
    a_ip, v_ip, v_mac = attacker.public_net.ipv4.ip, victim.public_net.ipv4.ip, mac(victim.id)
    deadline = time.monotonic() + 120
    a_conn = ssh.wait_for_ssh(a_ip, keypair, pin=None, deadline=deadline)
    v_conn = ssh.wait_for_ssh(v_ip, keypair, pin=None, deadline=deadline)
    try:
        assert ssh.run(v_conn, "cat /sys/class/net/host0/address")[1].strip() == v_mac
        # While the attacker holds the host's address its own kernel ignores the host's ARP (sent "from itself"):
        # the attack runs detached, and gives the addresses back before the test reads its result.
        code, _, err = ssh.run(a_conn, f"cat > /root/hostile.py <<'EOF'\n{HOSTILE}\nEOF\n"
                                       f"systemd-run --unit=hostile sh -c 'ip addr add {v_ip}/32 dev host0; "
                                       f"ip addr add {HOST_ADDRESS}/32 dev host0; python3 /root/hostile.py {v_ip} "
                                       f"{v_mac} {HOST_ADDRESS} {ATTACK_SECONDS} > /root/hostile.json; "
                                       f"ip addr del {v_ip}/32 dev host0; ip addr del {HOST_ADDRESS}/32 dev host0'")
        assert code == 0, err
        a_conn.close()
        time.sleep(2)  # the claims are out
        # The bridge forgets where the victim is (its forwarding entry ages out): it floods the next frame to
        # the victim to every port; the attacker's port must still not pass it.
        subprocess.run(["bridge", "fdb", "del", v_mac, "dev", f"vb-{MACHINE_PREFIX}{victim.id}", "master"],
                       capture_output=True)
        for _ in range(5):
            conn = ssh.wait_for_ssh(v_ip, keypair, pin=None, deadline=time.monotonic() + 10)
            code, out, err = ssh.run(conn, f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' "
                                           f"http://{HOST_ADDRESS}:{DEFAULT_API_PORT}/apt/Release; echo; "
                                           f"ip -j neigh show {HOST_ADDRESS} dev host0")
            conn.close()
            status, neigh = out.split("\n", 1)
            assert status == "200", out + err
            assert json.loads(neigh)[0]["lladdr"] == bridge_mac(), "the victim's ARP entry for the host changed"
            assert neighbour(v_ip) == v_mac, "the host's ARP entry for the victim changed"
            time.sleep(2)
        a_conn = ssh.wait_for_ssh(a_ip, keypair, pin=None, deadline=time.monotonic() + ATTACK_SECONDS + 30)
        code, out, err = ssh.run(a_conn, "while systemctl is-active -q hostile; do sleep 0.5; done; "
                                         "cat /root/hostile.json")
        result = json.loads(out)
        assert result["sent"] > 500
        assert result["seen"] == 0, f"the attacker received {result['seen']} frames meant for the victim"
        assert neighbour(a_ip) == mac(attacker.id)
    finally:
        a_conn.close()
        v_conn.close()


def test_traffic_between_guests_obeys_the_firewalls_attached_to_its_target(cloud_unchanged, two_guests, keypair):
    """Guest a reaches guest b's port 22 but not 8080 while b's firewall allows only 22/tcp; all once it goes."""
    client = cloud_unchanged
    a, b = two_guests
    b_ip = b.public_net.ipv4.ip
    deadline = time.monotonic() + 120
    a_conn = ssh.wait_for_ssh(a.public_net.ipv4.ip, keypair, pin=None, deadline=deadline)
    b_conn = ssh.wait_for_ssh(b_ip, keypair, pin=None, deadline=deadline)

    def reaches(port: int) -> bool:
        _, out, _ = ssh.run(a_conn, f"timeout 3 bash -c 'echo > /dev/tcp/{b_ip}/{port}' && echo open")
        return "open" in out

    try:
        ssh.run(b_conn, "systemd-run --unit=probe python3 -m http.server 8080 >/dev/null 2>&1; sleep 1")
        assert reaches(22) and reaches(8080)
        fw = client.firewalls.create(name="g2g", rules=[
            FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0", "::/0"])],
            resources=[FirewallResource(type="server", server=b)]).firewall
        try:
            assert reaches(22), "the firewall's own port did not pass between guests"
            assert not reaches(8080), "a port outside b's firewall answered another guest"
        finally:
            for action in fw.remove_from_resources([FirewallResource(type="server", server=b)]):
                action.wait_until_finished(30)
        assert reaches(8080)
        fw.delete()
    finally:
        a_conn.close()
        b_conn.close()
