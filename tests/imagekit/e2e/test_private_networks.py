"""Private networks, end to end (issue 27, point 2): imagekit run from a guest on a network provisions a peer reached
only over the private network.

The bastion is a plain debian-12 server of the local cloud attached to the network, as an operator's bastion or
self-hosted runner is. imagekit goes there as a wheelhouse built once on this machine (guests reach no package index)
and unpacked into a directory on the bastion's PYTHONPATH; the operator's token, endpoint and key go in files, never
on a command line. The local cloud's API is plain http, which imagekit sends tokens over on loopback only, so the
bastion forwards a loopback port to the API on the bridge. From there `provision --network lan --ssh-via private`
makes a peer from the session's snapshot: every SSH login of imagekit's on the peer (its sshd's journal) comes from
the bastion's private address, none from its public one; `status` from the bastion reaches it and shows its private
address. From this machine, which is not on the network (the local cloud keeps its host off every network), the same
command fails before anything is created. Everything is deleted at the end (checked)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
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
PEER = "peer-1"
SITE = "/opt/imagekit"  # where the wheels are unpacked on the bastion
# The bastion's loopback port, forwarded to the local cloud's API on the bridge (one thread per direction).
FORWARD = """import socket, sys, threading
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    near, _ = server.accept()
    far = socket.create_connection((sys.argv[2], int(sys.argv[1])))
    for a, b in ((near, far), (far, near)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""
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
                           ("/root/.ssh/operator", key.private_openssh), ("/root/forward.py", FORWARD)):
            with sftp.open(path, "w") as fh:
                fh.chmod(0o600)
                fh.write(text)
        sftp.close()
        ssh.must(conn, f"python3 -c \"import glob, zipfile; [zipfile.ZipFile(w).extractall('{SITE}') "
                       "for w in glob.glob('/root/wheels/*.whl')]\" && systemd-run --unit=api-forward python3 "
                       f"/root/forward.py {DEFAULT_API_PORT} {HOST_ADDRESS} && for i in $(seq 50); do "
                       f"ss -ltn | grep -q 127.0.0.1:{DEFAULT_API_PORT} && break; sleep 0.1; done",
                 "imagekit unpacked and the API forwarded")
        yield {"network": network, "bastion": bastion, "conn": conn}
    finally:
        if conn is not None:
            conn.close()
        client.servers.delete(made.server).wait_until_finished(120)
        network.delete()


def test_imagekit_on_a_bastion_provisions_a_peer_reached_only_over_the_network(lan, fleet, operator, snapshot):
    client, network, bastion, conn = fleet, lan["network"], lan["bastion"], lan["conn"]
    servers = {s.id for s in client.servers.get_all()}
    # This machine is not on the network: refused before anything is created.
    here = invoke("provision", "--agent-id", PEER, "--no-tailscale", "--network", NETWORK, "--ssh-via", "private")
    assert here.returncode != 0
    assert "--ssh-via private: this machine has no route to 10.77.0.0/16" in here.stderr, here.stderr[-2000:]
    assert {s.id for s in client.servers.get_all()} == servers

    try:
        code, out, err = ssh.run(conn, f"{IMAGEKIT} provision --agent-id {PEER} --snapshot {snapshot} --no-tailscale "
                                       f"--network {NETWORK} --ssh-via private --json", timeout=300)
        assert code == 0, err[-3000:]
        row = json.loads(out)["agents"][0]
        assert row["status"] == "ready" and row["mode"] == "snapshot", row
        peer = client.servers.get_by_id(row["server_id"])
        [attachment] = peer.private_net
        assert attachment.network.id == network.id and row["ipv4"] == attachment.ip
        assert peer.labels["ssh-via"] == str(network.id)

        code, out, err = ssh.run(conn, f"{IMAGEKIT} status --agent-id {PEER} --json", timeout=120)
        assert code == 0, err[-2000:]
        checked = json.loads(out)["agents"][0]
        assert checked["ssh"] is True and checked["healthy"] is True, checked
        assert checked["private_ip"] == checked["ipv4"] == attachment.ip

        # Every login of imagekit's came from the bastion's address on the network, none from its public one
        # (this test's own login, from the host's bridge address, is the only other).
        key, _ = operator
        with ssh.connect(peer.public_net.ipv4.ip, key, pin=hostkey.pin(peer)) as peer_conn:
            journal = ssh.must(peer_conn, "journalctl -u ssh --no-pager -o cat", "the peer's sshd journal")
        sources = re.findall(r"Accepted publickey for root from (\S+)", journal)
        bastion_private = bastion.private_net[0].ip
        assert set(sources) == {bastion_private, HOST_ADDRESS}, sources
        assert sources.count(bastion_private) >= 2  # provision's readiness checks, then status
    finally:
        assert invoke("deprovision", "--agent-id", PEER).returncode == 0
