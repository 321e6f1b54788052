"""Private networks, end to end (issue 27, point 2): imagekit run from a guest on a network provisions hosts reached
only over the private network.

The bastion is a plain debian-12 server of the local cloud attached to the network, as an operator's bastion or
self-hosted runner is. imagekit goes there as a wheelhouse built once on this machine (guests reach no package index)
and unpacked into a directory on the bastion's PYTHONPATH; the operator's token, endpoint and key go in files, never
on a command line. The local cloud's API is plain http, which imagekit sends tokens over on loopback only, so the
bastion's loopback port is forwarded (over the test's SSH connection) to the API. From there, with `--network lan
--ssh-via private`, `provision` makes two agents from the session's snapshot, one claiming a pool host that `pool
fill` made there the same way, the other cold: every SSH login of imagekit's on them (their sshd's journal) comes
from the bastion's private address, none from its public one; `status` from the bastion reaches them and shows
their private addresses; the agents reach each other on the network; a job's host (`run`) sees its SSH connections
come from the network. From this machine, which is not on the network (the local cloud keeps its host off every
network), the same provision fails before anything is created. Everything is deleted at the end (checked)."""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hcloud.images import Image
from hcloud.networks import NetworkSubnet
from hcloud.server_types import ServerType
from operator_cli import ROOT, invoke

from imagekit.host import hostkey, ssh
from localcloud import client as localcloud
from localcloud.paths import DEFAULT_API_PORT, HOST_ADDRESS

pytestmark = pytest.mark.e2e
NETWORK = "imagekit-e2e-lan"
SITE = "/opt/imagekit"  # where the wheels are unpacked on the bastion
IMAGEKIT = (f"set -a && . /root/imagekit.env && set +a && cd /root && PYTHONPATH={SITE} python3 -c "
            "'from imagekit.cli import program; program.run()'")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """imagekit and its dependencies as wheels, built once on this machine (it reaches PyPI; guests do not)."""
    where = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(where), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    return where


@pytest.fixture
def lan(fleet, operator, key_env, wheelhouse):
    """The network and the bastion on it with imagekit unpacked, the API forwarded and the operator's settings in a
    file; deleted at the end."""
    client = fleet
    key, sk = operator
    network = client.networks.create(name=NETWORK, ip_range="10.77.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.77.1.0/24", network_zone="eu-central")])
    made = client.servers.create(name="bastion", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[sk], networks=[network])
    conn = None
    try:
        made.action.wait_until_finished(120)
        bastion = client.servers.get_by_id(made.server.id)
        conn = ssh.wait_for_ssh(bastion.public_net.ipv4.ip, key, pin=None,  # made without imagekit
                                deadline=time.monotonic() + 120)
        ssh.must(conn, "mkdir -p /root/wheels /root/.ssh && chmod 700 /root/.ssh", "directories")
        sftp = conn.open_sftp()
        for wheel in wheelhouse.glob("*.whl"):
            sftp.put(str(wheel), f"/root/wheels/{wheel.name}")
        settings = {"HCLOUD_TOKEN": localcloud.current().token,
                    "HCLOUD_ENDPOINT": f"http://127.0.0.1:{DEFAULT_API_PORT}/v1",
                    "HETZNER_SSH_KEY_ID": key_env["HETZNER_SSH_KEY_ID"], "AURA_API_URL": key_env["AURA_API_URL"],
                    "SSH_PRIVATE_KEY_PATH": "/root/.ssh/operator"}
        for path, text in (("/root/imagekit.env", "".join(f"{k}={v}\n" for k, v in settings.items())),
                           ("/root/.ssh/operator", key.private_openssh)):
            with sftp.open(path, "w") as fh:
                fh.chmod(0o600)
                fh.write(text)
        sftp.close()
        ssh.must(conn, f"python3 -c \"import glob, zipfile; [zipfile.ZipFile(w).extractall('{SITE}') "
                       "for w in glob.glob('/root/wheels/*.whl')]\"", "imagekit unpacked")
        forward_api(conn)
        yield {"network": network, "bastion": bastion, "conn": conn}
    finally:
        if conn is not None:
            conn.close()
        client.servers.delete(made.server).wait_until_finished(120)
        network.delete()


def forward_api(conn) -> None:
    """The bastion's loopback port of the API forwarded over the test's SSH connection to the API on this machine's
    loopback, as a bastion reaches Hetzner's API (the local cloud's listener on the bridge is made for guests' apt and
    Tailscale clients, with little patience for idle keep-alive connections)."""
    def bridge(channel) -> None:
        with channel, socket.create_connection(("127.0.0.1", DEFAULT_API_PORT)) as api:
            ends = {channel: api, api: channel}
            while True:
                for ready in select.select(list(ends), [], [])[0]:
                    data = ready.recv(65536)
                    if not data:
                        return
                    ends[ready].sendall(data)

    conn.get_transport().request_port_forward(
        "127.0.0.1", DEFAULT_API_PORT,
        lambda channel, origin, server: threading.Thread(target=bridge, args=(channel,), daemon=True).start())


def ssh_peers(listing: str) -> set[str]:
    """The peers' addresses in the lines of `ss -Htn state established sport = :22` (local and peer last)."""
    return set(re.findall(r"\S+:22\s+(\d+\.\d+\.\d+\.\d+):\d+\s*$", listing, re.MULTILINE))


def test_imagekit_on_a_bastion_reaches_its_hosts_only_over_the_network(lan, fleet, operator, snapshot):
    client, network, bastion, conn = fleet, lan["network"], lan["bastion"], lan["conn"]
    bastion_private = bastion.private_net[0].ip
    servers = {s.id for s in client.servers.get_all()}
    # This machine is not on the network: refused before anything is created.
    here = invoke("provision", "--agent-id", "peer-1", "--no-tailscale", "--network", NETWORK, "--ssh-via", "private")
    assert here.returncode != 0
    assert "--ssh-via private: this machine has no route to 10.77.0.0/16" in here.stderr, here.stderr[-2000:]
    assert {s.id for s in client.servers.get_all()} == servers

    on_network = f"--snapshot {snapshot} --network {NETWORK} --ssh-via private --json"
    try:
        # A pool host on the network, then two agents: one claims it, the other is made cold.
        code, _, err = ssh.run(conn, f"{IMAGEKIT} pool fill --size 1 {on_network}", timeout=300)
        assert code == 0, err[-3000:]
        code, out, err = ssh.run(conn, f"{IMAGEKIT} provision --agent-id peer-1,peer-2 --no-tailscale {on_network}",
                                 timeout=300)
        assert code == 0, err[-3000:]
        rows = json.loads(out)["agents"]
        assert sorted(r["mode"] for r in rows) == ["pool", "snapshot"] and {r["status"] for r in rows} == {"ready"}
        peers = [client.servers.get_by_id(r["server_id"]) for r in rows]
        for row, peer in zip(rows, peers, strict=True):
            [attachment] = peer.private_net
            assert attachment.network.id == network.id and row["ipv4"] == attachment.ip, row
            assert peer.labels["ssh-via"] == str(network.id)

        code, out, err = ssh.run(conn, f"{IMAGEKIT} status --json", timeout=120)
        assert code == 0, err[-2000:]
        checked = json.loads(out)["agents"]
        assert {(a["private_ip"], a["ipv4"], a["ssh"], a["healthy"]) for a in checked} == \
            {(p.private_net[0].ip, p.private_net[0].ip, True, True) for p in peers}, checked

        # Every login of imagekit's on the agents came from the bastion's address on the network, none from its
        # public one (this test's own login, from the host's bridge address, is the only other).
        key, _ = operator
        for peer, other in zip(peers, peers[::-1], strict=True):
            with ssh.connect(peer.public_net.ipv4.ip, key, pin=hostkey.pin(peer)) as peer_conn:
                journal = ssh.must(peer_conn, "journalctl -u ssh --no-pager -o cat", "the peer's sshd journal")
                # the two agents reach each other on the network
                ssh.must(peer_conn, f"timeout 3 bash -c 'exec 3<>/dev/tcp/{other.private_net[0].ip}/22'",
                         f"{peer.name} reaching {other.name}'s sshd on its private address")
            sources = re.findall(r"Accepted publickey for root from (\S+)", journal)
            assert set(sources) == {bastion_private, HOST_ADDRESS}, (peer.name, sources)

        # A job's host too: the connections to its sshd, seen from the job itself, come from the network.
        code, out, err = ssh.run(conn, f"{IMAGEKIT} run --job-id net-job {on_network} -- "
                                       "ss -Htn state established sport = :22",
                                 timeout=300)
        assert code == 0 and json.loads(out)["exit_code"] == 0, err[-3000:]
        assert ssh_peers(err) == {bastion_private}, err[-3000:]
    finally:
        assert invoke("deprovision", "--agent-id", "peer-1,peer-2").returncode == 0
        for server in client.servers.get_all(label_selector=f"ssh-via={network.id}"):  # a pool host left unclaimed
            client.servers.delete(server).wait_until_finished(120)
