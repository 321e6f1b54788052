"""The operator's own labels and SSH sources on a real agent from the session's snapshot: `--label` lands on the
server and `status --json` shows only those; `--ssh-from` with this machine's bridge address puts the agent behind
the source set's firewall (the local cloud enforces it) and status still reaches it; a source set without this
machine's address is detected (sshd does not answer), the firewall the agent had is put back and the command fails
naming the fix. An IPv6-only agent claims an IPv6-only pool host, enrols in the tailnet, reaches its mirror and lets
its containers reach IPv6, and takes status, update and an in-place roll over IPv6; an IPv6-only job host has no
IPv4 route. The cloud as the test found it at the end."""

from __future__ import annotations

import ipaddress
import json
import shlex

import pytest
from conftest import BAKED_IMAGE
from hcloud.server_types import ServerType
from hcloud.servers import ServerCreatePublicNetwork
from operator_cli import invoke
from test_provision import standin
from test_update import STATE, on_host

from imagekit.cloud.servers import firewalls
from localcloud.paths import DEFAULT_API_PORT, HOST_ADDRESS, HOST_ADDRESS6

pytestmark = pytest.mark.e2e
AGENT = "lab-1"


def firewall_names(client, server_id: int) -> list[str]:
    return sorted(f.name for f in (client.firewalls.get_by_id(fw.id) for fw in
                                   firewalls(client.servers.get_by_id(server_id))))


def test_own_labels_and_ssh_sources(fleet, key_env):
    client, env = fleet, key_env
    ssh_firewalls = {f.id for f in client.firewalls.get_all()}
    try:
        made = invoke("provision", "--agent-id", AGENT, "--no-pool", "--json", "--label", "team=payments",
                      "--label", "example.com/owner=ops", "--ssh-from", f"{HOST_ADDRESS}/32,2001:db8::/48",
                      env_extra=env)
        assert made.returncode == 0, made.stderr[-3000:]
        row = json.loads(made.stdout)["agents"][0]
        assert row["status"] == "ready", row
        server = client.servers.get_by_id(row["server_id"])
        assert {"team": "payments", "example.com/owner": "ops", "role": "agent"}.items() <= server.labels.items()
        narrowed = firewall_names(client, server.id)
        assert len(narrowed) == 1 and narrowed[0].startswith("imagekit-agent-ssh-"), narrowed
        fw = client.firewalls.get_by_name(narrowed[0])
        assert [r.source_ips for r in fw.rules if r.port == "22"] == [[f"{HOST_ADDRESS}/32", "2001:db8::/48"]]

        status = invoke("status", "--agent-id", AGENT, "--json", env_extra=env)
        assert status.returncode == 0, status.stderr[-2000:]
        checked = json.loads(status.stdout)["agents"][0]
        assert checked["healthy"] is True and checked["ssh"] is True, checked
        assert checked["labels"] == {"example.com/owner": "ops", "team": "payments"}

        # A source set without this machine: sshd no longer answers, so the agent's firewall goes back.
        locked = invoke("provision", "--agent-id", AGENT, "--json", "--ssh-from", "192.0.2.0/24", env_extra=env)
        assert locked.returncode != 0, locked.stdout
        assert "could not reach" in locked.stderr and "firewall was put back" in locked.stderr, locked.stderr[-2000:]
        assert firewall_names(client, server.id) == narrowed
        assert [f.name for f in client.firewalls.get_all() if f.name.startswith("imagekit-agent-ssh-")] == narrowed
        assert invoke("status", "--agent-id", AGENT, "--json", env_extra=env).returncode == 0
    finally:
        assert invoke("deprovision", "--agent-id", AGENT).returncode == 0
        for fw in client.firewalls.get_all():
            if fw.id not in ssh_firewalls and fw.name.startswith("imagekit-agent-ssh-"):
                fw.delete()


def twin_of(client, snapshot: int) -> int:
    """A second snapshot with the session snapshot's disk and labels (a server from it, never booted, imaged at once:
    milliseconds on the local cloud), so that a roll has somewhere to go without a build of its own."""
    image = client.images.get_by_id(snapshot)
    made = client.servers.create(name="six-twin", server_type=ServerType(name="cx23"), image=image,
                                 start_after_create=False, public_net=ServerCreatePublicNetwork(enable_ipv4=False))
    try:
        made.action.wait_until_finished(120)
        imaged = client.servers.create_image(made.server, description=f"{image.description}-twin",
                                             labels=image.labels)
        imaged.action.wait_until_finished(120)
        return imaged.image.id
    finally:
        made.server.delete().wait_until_finished(120)


# apt through the mirror; a container's request to ``{host}`` (busybox's nc closes the connection when its input
# ends: the request's input stays open until the answer is in; tried again while the container's address is new)
REACHES = ("apt-get -q update >/dev/null 2>&1 && echo apt-ok || echo apt-failed; "
           "docker run --rm --pull=never {image} sh -c {probe}")
CONTAINER_PROBE = ("for i in 1 2 3 4 5; do (printf 'GET /apt/Release HTTP/1.0\\r\\n\\r\\n'; sleep 2) | "
                   "nc -w 3 {host} {port} | head -1 | grep -q '^HTTP/1.1 200' && echo reached && exit; done; "
                   "echo unreached")


def test_an_ipv6_only_agent_and_job(fleet, snapshot, operator, key_env, tmp_path):
    client, (key, _) = fleet, operator
    env = {**key_env, "IMAGEKIT_IPV4": "0"}  # the setting, as a workflow sets it
    twin = None
    try:
        # An IPv6-only pool (hosts of one family: a pool of its own), claimed by an IPv6-only agent that enrols in
        # the tailnet over IPv6 (the stand-in answers on the host's IPv6 address too).
        filled = invoke("pool", "fill", "--size", "1", "--json", env_extra=env)
        assert filled.returncode == 0, filled.stderr[-3000:]
        [member] = json.loads(filled.stdout)["members"]
        pooled = client.servers.get_by_id(member["server_id"])
        assert pooled.public_net.ipv4 is None and pooled.labels["ipv4"] == "no"
        made = invoke("provision", "--agent-id", "six-1", "--json", env_extra=env)
        assert made.returncode == 0, made.stderr[-3000:]
        row = json.loads(made.stdout)["agents"][0]
        assert row["status"] == "ready" and row["mode"] == "pool" and row["server_id"] == pooled.id, row
        server = client.servers.get_by_id(row["server_id"])
        assert server.public_net.ipv4 is None and server.public_net.ipv6 is not None
        assert ipaddress.ip_address(row["ipv4"]) in ipaddress.ip_network(server.public_net.ipv6.ip)
        assert [d["hostname"] for d in standin().devices()].count("six-1") == 1

        # Its containers reach IPv6 destinations (the host's address on the bridge), and apt its mirror over IPv6.
        probe = shlex.quote(CONTAINER_PROBE.format(host=HOST_ADDRESS6, port=DEFAULT_API_PORT))
        assert on_host(row["ipv4"], key, REACHES.format(image=BAKED_IMAGE, probe=probe)).splitlines() == \
            ["apt-ok", "reached"]

        status = invoke("status", "--agent-id", "six-1", "--json", env_extra=env)
        assert status.returncode == 0, status.stderr[-2000:]
        checked = json.loads(status.stdout)["agents"][0]
        assert checked["healthy"] is True and checked["ssh"] is True and checked["service"] == "active", checked
        assert checked["tailscale_online"] is True, checked
        cost = invoke("cost", "--json", env_extra=env)
        assert cost.returncode == 0, cost.stderr[-2000:]
        saved = json.loads(cost.stdout)["ipv4_saved"]
        assert saved["count"] == 1 and saved["hourly"] > 0, saved

        # update and an in-place roll, over IPv6: the agent keeps its new secret and stays IPv6-only.
        secrets = tmp_path / "six.env"
        secrets.write_text("UPDATE_TOKEN=over-ipv6-6\n")
        updated = invoke("update", "--agent-id", "six-1", "--secrets-file", str(secrets), "--json", env_extra=env)
        assert updated.returncode == 0, updated.stderr[-3000:]
        assert [a["status"] for a in json.loads(updated.stdout)["agents"]] == ["updated"]
        twin = twin_of(client, snapshot)
        rolled = invoke("roll", "--agent-id", "six-1", "--to", str(twin), "--in-place", "--json", env_extra=env)
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        [moved] = json.loads(rolled.stdout)["agents"]
        print("IPv6-only in-place roll seconds:", moved["seconds"])
        assert moved["status"] == "rolled" and moved["new_server_id"] == server.id, moved
        rebuilt = client.servers.get_by_id(server.id)
        assert rebuilt.image.id == twin and rebuilt.public_net.ipv4 is None
        assert on_host(row["ipv4"], key, STATE).splitlines()[1:] == ["active", "over-ipv6-6"]
        assert [d["hostname"] for d in standin().devices()].count("six-1") == 1

        # A job's host IPv6-only too (the option this time): reached over IPv6, and with no route to the cloud's IPv4
        # subnet (on a dual-stack host the same command exits 0).
        probe = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('{HOST_ADDRESS}', 9))"
        job = invoke("run", "--job-id", "six-job", "--no-ipv4", "--json", "--", "python3", "-c", probe,
                     env_extra=key_env)
        assert job.returncode == 1 and json.loads(job.stdout)["exit_code"] == 1, job.stderr[-3000:]
        assert "Network is unreachable" in job.stderr, job.stderr[-2000:]
    finally:
        assert invoke("deprovision", "--agent-id", "six-1").returncode == 0
        assert invoke("pool", "drain", env_extra=env).returncode == 0
        if twin is not None:
            client.images.get_by_id(twin).delete()
