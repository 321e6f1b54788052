"""Recycling inside the paid hour, end to end: an agent claimed from a pool of size 1 is deprovisioned with most of
its hour left while the pool is empty, so its server is rebuilt into the pool instead of deleted: the old pinned host
key is refused and the new one accepted (OpenSSH with StrictHostKeyChecking), a new machine id and nothing of the
tenant on its disk, its Tailscale device gone, labelled as a fresh pool host is, and the next provision claims it.
--recycle-min 0 deletes (bad values are refused before anything happens); a finished job's server is recycled too;
the cloud as the test found it."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from operator_cli import invoke
from test_pool import members, provisioned
from test_provision import standin
from test_update import on_host

from imagekit.host import hostkey

pytestmark = [pytest.mark.e2e]


def ssh_with_known_hosts(ip: str, key_file, known_hosts, command: str) -> subprocess.CompletedProcess:
    """OpenSSH as a colleague would log in: only the host key in ``known_hosts`` is accepted."""
    return subprocess.run(["ssh", "-i", str(key_file), "-o", "StrictHostKeyChecking=yes", "-o",
                           f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null", "-o",
                           "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{ip}", command],
                          capture_output=True, text=True, timeout=30)


def scanned_key(ip: str, pin: str) -> str:
    """The host's ed25519 key as ``ssh-keyscan`` sees it, checked against the pin (its host-key label)."""
    scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", ip], capture_output=True, text=True, timeout=30)
    kind, blob = scanned.stdout.split()[1:3]
    assert hostkey.fingerprint(base64.b64decode(blob)) == pin
    return f"{ip} {kind} {blob}\n"


def test_deprovisioned_agent_and_finished_job_are_recycled_into_the_pool(fleet, snapshot, operator, client, key_env,
                                                                        profile_firewall, tmp_path):
    key, sk = operator
    key_file = key_env["SSH_PRIVATE_KEY_PATH"]
    try:
        bad = invoke("deprovision", "--agent-id", "recycle-1", "--recycle-min", "60", env_extra=key_env)
        assert bad.returncode == 1 and "--recycle-min '60'" in bad.stderr and "1 to 59" in bad.stderr

        assert invoke("pool", "fill", "--size", "1", env_extra=key_env).returncode == 0
        agent = provisioned(invoke("provision", "--agent-id", "recycle-1", "--json", env_extra=key_env))
        assert agent["mode"] == "pool" and not members(client)
        ip, sid = agent["ipv4"], agent["server_id"]
        old_pin = client.servers.get_by_id(sid).labels[hostkey.LABEL]
        old_known = tmp_path / "known_old"
        old_known.write_text(scanned_key(ip, old_pin))
        old_machine = on_host(ip, key, "echo tenant > /root/tenant; cat /etc/machine-id")
        assert [d["hostname"] for d in standin().devices()].count("recycle-1") == 1

        gone = invoke("deprovision", "--agent-id", "recycle-1", "--json", env_extra=key_env)
        assert gone.returncode == 0, gone.stderr[-3000:]
        result = json.loads(gone.stdout)
        assert [r["server_id"] for r in result["recycled"]] == [sid] and result["deleted"] == []
        assert "recycled into the pool:" in gone.stderr and "minutes left of its paid hour" in gone.stderr
        assert "recycle-1" not in [d["hostname"] for d in standin().devices()]

        [host] = members(client)
        fresh = host.labels
        assert host.id == sid and host.name.startswith("imagekit-pool-") and host.status == "running"
        assert host.image.id == snapshot and host.public_net.ipv4.ip == ip
        assert fresh["role"] == "pool" and fresh["profile"] == "agent" and fresh["pool-key"] == str(sk.id)
        assert "lease-until" not in fresh and "agent-id" not in fresh and "deployment" not in fresh
        assert len(fresh[hostkey.LABEL]) == 43 and fresh[hostkey.LABEL] != old_pin

        # The old host key is refused, the new one (its fingerprint the new label) accepted.
        refused = ssh_with_known_hosts(ip, key_file, old_known, "true")
        assert refused.returncode == 255 and "host key" in refused.stderr.lower(), refused.stderr
        new_known = tmp_path / "known_new"
        new_known.write_text(scanned_key(ip, fresh[hostkey.LABEL]))
        accepted = ssh_with_known_hosts(ip, key_file, new_known, "cat /etc/machine-id; ls /root/tenant 2>&1; "
                                                                  "tailscale status --json | grep -c recycle-1; "
                                                                  "test -e /opt/openclaw/config/agent.env && echo "
                                                                  "configured || echo unassigned")
        machine, tenant, enrolled, configured = accepted.stdout.split("\n")[:4]
        assert accepted.returncode == 0, accepted.stderr
        assert machine != old_machine and len(machine) == 32 and "No such file" in tenant
        assert enrolled == "0" and configured == "unassigned"

        # The recycled host is claimed as a fresh pool host is.
        again = provisioned(invoke("provision", "--agent-id", "recycle-2", "--json", env_extra=key_env))
        assert again["mode"] == "pool" and again["server_id"] == sid
        assert [d["hostname"] for d in standin().devices()].count("recycle-2") == 1

        deleted = invoke("deprovision", "--agent-id", "recycle-2", "--recycle-min", "0", "--json", env_extra=key_env)
        assert json.loads(deleted.stdout)["deleted"][0]["server_id"] == sid and "recycling is off" in deleted.stderr

        # A finished job's server (no firewall, a temporary key) goes the same way: behind the profile's firewall.
        job = invoke("run", "--job-id", "recycle-job", "--json", "--", "true", env_extra=key_env)
        assert job.returncode == 0, job.stderr[-3000:]
        [ran] = json.loads(job.stdout)["jobs"]
        assert "recycled into the pool:" in job.stderr
        [host] = members(client)
        assert host.id == ran["server_id"] and host.labels["role"] == "pool" and "job-id" not in host.labels
        assert [f.firewall.id for f in host.public_net.firewalls] == [profile_firewall.id]
    finally:
        invoke("pool", "drain", env_extra=key_env)
        invoke("deprovision", "--agent-id", "recycle-1,recycle-2", "--recycle-min", "0", env_extra=key_env)
