"""The image's hardening on real hosts of the local cloud: patched, lynis's index, the agent's
sandbox, Docker's published ports behind UFW, and the Tailscale auth key out of the agent's reach."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from hcloud.firewalls import FirewallResource
from operator_cli import agent_env, invoke, pinned

from imagekit.host import ssh
from imagekit.host.audit import EXPOSURE_LIMIT, LYNIS_TARGET, audit
from localcloud.paths import DEFAULT_API_PORT, HOST_ADDRESS

pytestmark = pytest.mark.e2e
HOSTILE_AGENT = Path(__file__).parent / "hostile_agent"
API = f"{HOST_ADDRESS} {DEFAULT_API_PORT}"  # the local cloud's API on its bridge, what a container reaches out to
# A connection to the metadata service (the local cloud's, as Hetzner's: it hands the user data to whoever asks from
# the server): its errno's name, or nothing when it connected.
METADATA_TRY = ("python3 -c 'import errno, socket\ntry: socket.create_connection((\"169.254.169.254\", 80), 2)\n"
                "except OSError as e: print(errno.errorcode.get(e.errno, e))'")


def provisioned(sk, agent: str, *args: str) -> dict:
    proc = invoke("provision", "--agent-id", agent, "--json", *args,
                  env_extra=agent_env(sk))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [host] = json.loads(proc.stdout)["agents"]
    return host


def deprovisioned(agent: str) -> None:
    gone = invoke("deprovision", "--agent-id", agent)
    assert gone.returncode == 0, gone.stderr[-2000:]


def test_a_ready_host_is_patched_sandboxed_and_scores_80_on_lynis(fleet, operator):
    key, sk = operator
    host = provisioned(sk, "audited")
    try:
        conn = ssh.connect(host["ipv4"], key, pin=pinned(host["ipv4"]))
        code, out, err = ssh.run(conn, "apt-get -q update >/dev/null && apt-get -s dist-upgrade | grep -c '^Inst '; "
                                       "systemctl --failed --no-legend --plain")
        pending, *failed_units = out.split("\n")
        assert pending.strip() == "0", out + err
        assert [u for u in failed_units if u.strip()] == []
        result = audit(conn)
        conn.close()
        assert result.lynis_index >= LYNIS_TARGET, result.suggestions
        assert result.unit_exposure <= EXPOSURE_LIMIT
    finally:
        deprovisioned("audited")


def test_docker_published_ports_obey_ufw(fleet, operator):
    """With no Hetzner firewall in front, a port a container publishes is closed to the outside
    until UFW routes it; the container still reaches out."""
    client = fleet
    key, sk = operator
    host = provisioned(sk, "docked")
    ip = host["ipv4"]
    try:
        server = client.servers.get_by_id(host["server_id"])
        for fw in client.firewalls.get_all():
            if any(a.server and a.server.id == server.id for a in fw.applied_to):
                fw.remove_from_resources([FirewallResource(type="server", server=server)])
        conn = ssh.connect(ip, key, pin=pinned(ip))
        code, out, err = ssh.run(conn, f"""set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q update >/dev/null && apt-get -q -y install busybox-static >/dev/null
d=$(mktemp -d); mkdir -p $d/bin $d/www; cp /bin/busybox $d/bin/; echo published > $d/www/index.html
tar -C $d -c . | docker import - imagekit-test/busybox >/dev/null
docker run -d --name web -p 8080:80 imagekit-test/busybox /bin/busybox httpd -f -p 80 -h /www >/dev/null
for _ in $(seq 50); do curl -fs http://127.0.0.1:8080/ && break; sleep 0.2; done
docker run --rm imagekit-test/busybox /bin/busybox nc -w 3 {API} </dev/null && echo container-out-ok
""", timeout=600)
        assert code == 0 and "published" in out and "container-out-ok" in out, out + err
        with pytest.raises(OSError):
            socket.create_connection((ip, 8080), timeout=3).close()
        code, out, err = ssh.run(conn, "ufw route allow proto tcp to any port 80")
        assert code == 0, out + err
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((ip, 8080), timeout=3).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "ufw route allow did not open the published port"
                time.sleep(0.5)
        conn.close()
    finally:
        deprovisioned("docked")


def test_agent_bundle_cannot_reach_the_auth_key(fleet, operator):
    """A bundle that hunts for the key from its first moment: the key file, cloud-init's copies of
    the user data, other processes, the metadata service. It finds nothing."""
    key, sk = operator
    host = provisioned(sk, "hostile", "--agent-bundle", str(HOSTILE_AGENT))
    try:
        conn = ssh.connect(host["ipv4"], key, pin=pinned(host["ipv4"]))
        deadline = time.monotonic() + 60
        while True:
            code, out, _ = ssh.run(conn, "cat /opt/openclaw/logs/probe.json")
            probe = json.loads(out) if code == 0 else {}
            if probe.get("done") or time.monotonic() > deadline:
                break
            time.sleep(1)
        _, unit_deny, _ = ssh.run(conn, "systemctl show -p IPAddressDeny --value openclaw-agent")
        as_agent = ssh.run(conn, f"runuser -u openclaw -- {METADATA_TRY}")[1].strip()
        as_root = ssh.run(conn, METADATA_TRY)[1].strip()
        served = ssh.run(conn, "curl -s -m 5 http://169.254.169.254/hetzner/v1/userdata")[1]
        conn.close()
        assert probe.get("done"), probe
        assert probe["leaked"] == []
        for path in ("/run/imagekit/tailscale-authkey", "/var/lib/cloud/instance/user-data.txt",
                     "/var/lib/cloud/seed/nocloud/user-data"):
            assert probe["outcome"][path] in ("EACCES", "ENOENT"), (path, probe)
        assert probe["outcome"]["/proc/1/environ"] != "read"
        assert probe["processes_seen"] <= 3, "the agent sees other users' processes"
        assert probe["metadata"] != "connected" and "metadata service" not in probe["leaked"], probe
        assert unit_deny.strip() == "169.254.169.254/32"  # on a VM; in a container the nftables rule holds alone
        assert as_agent == "ECONNREFUSED", f"the agent's connection to the metadata service was not refused: {as_agent}"
        assert as_root == "", as_root  # the rule is the agent's: root reaches the service ...
        assert "tskey-" in served  # ... which really serves the user data with the key: what the rule keeps away
    finally:
        deprovisioned("hostile")
