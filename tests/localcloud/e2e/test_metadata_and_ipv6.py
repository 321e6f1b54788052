"""Guests boot the way Hetzner's do (issue 26, items 1 and 2): the metadata service at 169.254.169.254 answers each
guest for itself, told apart by its link; user data arrives over the network, with nothing written into the disk;
IPv6-only servers are reached over IPv6 (SSH, the package mirror, the Tailscale stand-in) behind firewalls that
hold for IPv6 too, and reach the host from their own address from the first moment of their boot; a Primary IP
outlives its server when it is not auto-deleted."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest
import yaml
from hcloud.firewalls import FirewallResource, FirewallRule
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType
from hcloud.servers.domain import ServerCreatePublicNetwork

from imagekit.host import ssh
from localcloud.paths import DEFAULT_API_PORT, GUEST_TABLE, HOST_ADDRESS, HOST_ADDRESS6, MIRROR_PORT, layout
from tests.localcloud.conftest import boot_server
from tests.localcloud.e2e.test_tailscale_enrolment import ts_api

pytestmark = pytest.mark.e2e
MD = "http://169.254.169.254/hetzner/v1"
USER_DATA = "#cloud-config\nruncmd: [[touch, /root/ran-from-the-network]]\n"
# A DNS query (example.com, A) to each nameserver the guest's resolv.conf names; prints "server rcode" per server.
DNS_PROBE = r"""python3 - <<'EOF'
import socket
query = bytes.fromhex("12340100000100000000000007" + b"example".hex() + "03" + b"com".hex() + "0000010001")
for line in open("/etc/resolv.conf"):
    if line.startswith("nameserver"):
        server = line.split()[1]
        s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(query, (server, 53))
        print(server, s.recv(512)[3] & 15)
EOF"""
PATHS = ["metadata", "metadata/hostname", "metadata/instance-id", "metadata/public-ipv4", "metadata/public-keys",
         "metadata/availability-zone", "metadata/region", "metadata/network-config", "metadata/private-networks",
         "userdata"]


# The earliest a guest can connect to the host (cloud-init's bootcmd, its network just up): the source it left from
# and how it went. With IPv6 duplicate address detection its address was still tentative then: it left from ::1,
# which its pin drops, and timed out.
EARLIEST = f"""\
import socket
s = socket.socket(socket.AF_INET6)
s.settimeout(5)
try:
    s.connect(("{HOST_ADDRESS6}", {DEFAULT_API_PORT}))
    result = "connected"
except OSError as exc:
    result = repr(exc)
open("/root/earliest", "w").write(s.getsockname()[0] + " " + result)
"""
EARLIEST_USER_DATA = "#cloud-config\n" + yaml.safe_dump({"bootcmd": [["python3", "-c", EARLIEST]]})


def v6(server) -> str:
    return server.public_net.ipv6.ip.replace("::/64", "::1")


def fetch(conn, path: str, extra: str = "") -> tuple[str, str]:
    """(HTTP status, body) of GET ``path`` of the metadata service from the guest."""
    _, out, _ = ssh.run(conn, f"curl -s -m 5 {extra} -w '\\n%{{http_code}}' {MD}/{path}")
    body, _, status = out.rpartition("\n")
    return status.strip(), body


def listener_ports() -> list[int]:
    table = subprocess.run(["nft", "list", "table", "ip", GUEST_TABLE], capture_output=True, text=True).stdout
    return sorted({int(p) for p in re.findall(rf"dnat to {re.escape(HOST_ADDRESS)}:(\d+)", table)})


@pytest.fixture
def two_guests(cloud_unchanged, keypair):
    first, key = boot_server(cloud_unchanged, keypair, "md-a")
    second, _ = boot_server(cloud_unchanged, keypair, "md-b", key=key, user_data=USER_DATA)
    yield first, second
    for server in (first, second):
        cloud_unchanged.servers.delete(server).wait_until_finished(120)
    key.delete()


def test_each_guest_gets_its_own_metadata_by_its_link_and_its_user_data_over_the_network(two_guests, keypair):
    a, b = two_guests
    deadline = time.monotonic() + 120
    a_conn, b_conn = (ssh.wait_for_ssh(s.public_net.ipv4.ip, keypair, pin=None, deadline=deadline) for s in (a, b))
    try:
        for server, conn in ((a, a_conn), (b, b_conn)):
            answers = dict(zip(PATHS, (fetch(conn, p) for p in PATHS), strict=True))
            assert all(status == "200" for status, _ in answers.values()), answers
            assert answers["metadata/instance-id"][1] == str(server.id)
            assert answers["metadata/hostname"][1] == server.name
            assert answers["metadata/public-ipv4"][1] == server.public_net.ipv4.ip
            assert answers["metadata/availability-zone"][1] == "fsn1-dc14"
            assert answers["metadata/region"][1] == "eu-central"
            assert answers["metadata/private-networks"][1].strip() == "[]"
            assert keypair.public_openssh.split()[1] in answers["metadata/public-keys"][1]
            assert f"instance-id: {server.id}" in answers["metadata"][1]
            assert v6(server) + "/64" in answers["metadata/network-config"][1]
            assert fetch(conn, "metadata/no-such-key")[0] == "404"
        assert fetch(b_conn, "userdata")[1] == USER_DATA
        assert fetch(a_conn, "userdata")[1] == ""

        # The provider's resolvers are the local cloud's, on the bridge (never the host's own, which debootstrap
        # copies in); with no internet they resolve nothing and say so: REFUSED (5), not silence.
        code, out, err = ssh.run(a_conn, DNS_PROBE)
        assert code == 0 and out.split() == [HOST_ADDRESS, "5", HOST_ADDRESS6, "5"], out + err

        # Cloud-init ran b's user data, taken from the service: nothing was written into its disk.
        code, out, err = ssh.run(b_conn, "cloud-init status --wait >/dev/null; ls /root/ran-from-the-network; "
                                         "ls /var/lib/cloud/seed/nocloud 2>&1; cat /proc/1/cmdline | tr '\\0' ' '")
        assert code != 0 or "No such file" in out, out + err  # no seed directory in the guest
        assert "/root/ran-from-the-network" in out and "ds=nocloud-net;s=http://169.254.169.254/" in out, out
        disk = layout().disks / str(b.id)
        assert not (disk / "var/lib/cloud/seed/nocloud").exists()
        assert not list((disk / "etc/systemd/network").glob("*.network.d/50-localcloud-mac.conf"))

        # a takes b's address as its own and asks from it: its port drops what it sends from b's address.
        b_ip = b.public_net.ipv4.ip
        ssh.run(a_conn, f"ip addr add {b_ip}/32 dev host0")
        status, body = fetch(a_conn, "metadata/instance-id", f"--interface {b_ip}")
        ssh.run(a_conn, f"ip addr del {b_ip}/32 dev host0")
        assert str(b.id) not in body and status != "200", (status, body)
        assert fetch(a_conn, "metadata/instance-id")[1] == str(a.id)  # a's own link still gets a's answer
        # ... nor can it knock on another guest's listener directly.
        ports = listener_ports()
        assert len(ports) == 2
        for port in ports:
            _, out, _ = ssh.run(a_conn, f"curl -s -m 3 http://{HOST_ADDRESS}:{port}/hetzner/v1/metadata/instance-id")
            assert out == "", out
    finally:
        a_conn.close()
        b_conn.close()


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def test_an_ipv6_only_server_is_reached_over_ipv6_with_its_mirror_stand_in_and_firewall(
        cloud_unchanged, cloud_endpoint, keypair):
    client = cloud_unchanged
    key = client.ssh_keys.create(name="v6-only", public_key=keypair.public_openssh)
    made = client.servers.create(name="v6-only", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[key], public_net=ServerCreatePublicNetwork(enable_ipv4=False),
                                 user_data=EARLIEST_USER_DATA)
    made.action.wait_until_finished(120)
    server = client.servers.get_by_id(made.server.id)
    oauth = cloud_endpoint.admin("GET", "/_admin/tailscale")["oauth_client"]
    token = ts_api(cloud_endpoint, "POST", "/oauth/token", form={
        "client_id": oauth["client_id"], "client_secret": oauth["client_secret"],
        "grant_type": "client_credentials"})["access_token"]
    authkey = ts_api(cloud_endpoint, "POST", "/tailnet/-/keys", token=token, body={
        "capabilities": {"devices": {"create": {"reusable": False, "ephemeral": True, "preauthorized": True}}},
        "expirySeconds": 600})["key"]
    try:
        assert server.public_net.ipv4 is None
        address = v6(server)
        conn = ssh.wait_for_ssh(address, keypair, pin=None, deadline=time.monotonic() + 120)
        assert fetch(conn, "metadata/instance-id")[1] == str(server.id)  # the link-local metadata address
        assert ssh.run(conn, "cat /root/earliest")[1].split() == [address, "connected"]  # its own address at once
        assert fetch(conn, "metadata/public-ipv4")[1] == ""
        _, out, _ = ssh.run(conn, "ip -4 -o addr show dev host0; "
                                  f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' http://{HOST_ADDRESS}:{DEFAULT_API_PORT}/apt/Release")
        assert " 10." not in out and out.rstrip().endswith("000"), out  # no IPv4 of its own, nothing over IPv4
        api6 = f"http://[{HOST_ADDRESS6}]:{DEFAULT_API_PORT}"
        code, out, err = ssh.run(conn, f"""set -e
cat > /usr/local/bin/mirror6 <<'EOF'
#!/bin/sh
case "$1" in *{HOST_ADDRESS6}*) echo DIRECT;; *) echo http://[{HOST_ADDRESS6}]:{MIRROR_PORT};; esac
EOF
chmod +x /usr/local/bin/mirror6
echo 'Acquire::http::Proxy-Auto-Detect "/usr/local/bin/mirror6";' > /etc/apt/apt.conf.d/01mirror6
echo 'deb [trusted=yes] {api6}/apt ./' > /etc/apt/sources.list.d/standin.list
apt-get -q update
DEBIAN_FRONTEND=noninteractive apt-get -q -y install tailscale
tailscale up --authkey={authkey} --login-server={api6}/tailscale --hostname=v6-only-e2e
tailscale status --json""", timeout=600)
        assert code == 0, out[-2000:] + err[-2000:]
        assert "deb.debian.org" in out  # Debian's archive through the mirror, over IPv6
        devices = ts_api(cloud_endpoint, "GET", "/tailnet/-/devices", token=token)["devices"]
        assert [d["hostname"] for d in devices].count("v6-only-e2e") == 1
        ssh.run(conn, "tailscale logout; systemd-run --unit=probe python3 -m http.server --bind :: 8080; sleep 1")
        conn.close()

        assert reachable(address, 8080) and reachable(address, 22)
        fw = client.firewalls.create(name="v6-fw", rules=[
            FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0", "::/0"])],
            resources=[FirewallResource(type="server", server=server)]).firewall
        try:
            assert not reachable(address, 8080), "a port outside the firewall's rules answered over IPv6"
            assert reachable(address, 22)
            fw.set_rules([FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["::/0"]),
                          FirewallRule(direction="in", protocol="tcp", port="8080", source_ips=["10.0.0.0/8"])])
            assert not reachable(address, 8080), "an IPv4-only rule opened the port over IPv6"
        finally:
            for action in fw.remove_from_resources([FirewallResource(type="server", server=server)]):
                action.wait_until_finished(30)
        assert reachable(address, 8080)
        fw.delete()
    finally:
        client.servers.delete(server).wait_until_finished(120)
        key.delete()


def test_a_primary_ip_assigned_at_create_outlives_its_server_without_auto_delete(cloud_unchanged, keypair):
    client = cloud_unchanged
    pip = client.primary_ips.create(type="ipv4", name="kept-ip", location=Location(name="fsn1")).primary_ip
    server, key = boot_server_with(client, keypair, "pip-user", pip)
    try:
        assert pip.auto_delete is False and pip.assignee_id is None
        assert server.public_net.ipv4.ip == pip.ip and server.public_net.primary_ipv4.id == pip.id
        ssh.wait_for_ssh(pip.ip, keypair, pin=None, deadline=time.monotonic() + 120).close()
        assert client.primary_ips.get_by_id(pip.id).assignee_id == server.id
        own_v6 = server.public_net.primary_ipv6.id
    finally:
        client.servers.delete(server).wait_until_finished(120)
        key.delete()
    try:
        kept = client.primary_ips.get_by_id(pip.id)
        assert kept.ip == pip.ip and kept.assignee_id is None
        assert own_v6 not in {p.id for p in client.primary_ips.get_all()}  # the auto-deleted IPv6 went with it
    finally:
        client.primary_ips.delete(pip)


def boot_server_with(client, keypair, name: str, pip):
    key = client.ssh_keys.create(name=name, public_key=keypair.public_openssh)
    made = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[key], location=Location(name="fsn1"),
                                 public_net=ServerCreatePublicNetwork(ipv4=pip))
    made.action.wait_until_finished(120)
    return client.servers.get_by_id(made.server.id), key


HOSTILE_REQUESTS = r"""
import json, socket
def ask(data):
    s = socket.create_connection(("169.254.169.254", 80))
    s.settimeout(10)
    s.send(data)
    try:
        return s.recv(100).decode()
    except OSError as e:
        return type(e).__name__
print(json.dumps({"slow": ask(b"GET / HTTP/1.1\r\n"), "huge": ask(b"GET /" + b"a" * 20000 + b" HTTP/1.0\r\n\r\n"),
                  "post": ask(b"POST /hetzner/v1/userdata HTTP/1.0\r\n\r\n")}))
"""


def test_the_metadata_service_survives_a_hostile_request(two_guests, keypair):
    """A request that never ends, a huge head, a POST: each ends without harm; the next request is answered."""
    a, _ = two_guests
    conn = ssh.wait_for_ssh(a.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    try:
        _, out, _ = ssh.run(conn, f"python3 - <<'EOF'\n{HOSTILE_REQUESTS}\nEOF")
        result = json.loads(out)
        assert result["slow"] == "" and result["huge"] in ("", "ConnectionResetError"), result
        assert "405" in result["post"], result
        assert fetch(conn, "metadata/instance-id")[1] == str(a.id)
    finally:
        conn.close()
