"""The `runner` profile, added as data only (playbooks/runner.yml, playbooks/profiles/runner.yml, the example runner
bundle): built, verified on a clone, provisioned (its image and host checks pass, its firewall and UFW have its own
ports, its status answers on 8080 through both), seen healthy by `status`, and rolled onto a snapshot grown from the
first; the cloud as the test found it at the end."""

from __future__ import annotations

import json
import urllib.request

import pytest
from operator_cli import invoke
from test_provision import host_suite

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a build of its own, or a pool of hosts: minutes

FIREWALL = "managed-by=imagekit,role=firewall,profile=runner"


def test_runner_profile_builds_verifies_provisions_and_rolls(cloud_unchanged, operator, key_env):
    client, (key, _), env = cloud_unchanged, operator, key_env
    made, firewalls_before = [], {f.id for f in client.firewalls.get_all(label_selector=FIREWALL)}
    try:
        built = invoke("build-snapshot", "--profile", "runner", "--force", "--json")
        assert built.returncode == 0, built.stderr[-3000:]
        first = json.loads(built.stdout)["snapshot_id"]
        made.append(first)
        assert client.images.get_by_id(first).labels["profile"] == "runner"
        verified = invoke("verify", "--snapshot", str(first), "--profile", "runner")
        assert verified.returncode == 0, verified.stderr[-3000:]

        proc = invoke("provision", "--profile", "runner", "--agent-id", "ci-1", "--json", env_extra=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        [runner] = json.loads(proc.stdout)["agents"]
        assert runner["status"] == "ready" and runner["mode"] == "snapshot"
        server = client.servers.get_by_id(runner["server_id"])
        assert server.image.id == first and server.labels["profile"] == "runner" and server.labels["tailscale"] == "no"
        host_suite(runner["ipv4"], key, "ci-1", "snapshot", tags=(), profile="runner")
        [firewall] = client.firewalls.get_all(label_selector=FIREWALL)
        assert sorted((r.protocol, r.port) for r in firewall.rules) == [("tcp", "22"), ("tcp", "8080")]
        assert server.id in [r.server.id for r in firewall.applied_to]
        with urllib.request.urlopen(f"http://{runner['ipv4']}:8080/", timeout=30) as resp:
            answer = json.load(resp)
        assert answer["agent_id"] == "ci-1" and answer["docker"]  # it drives Docker as the runner user

        status = invoke("status", "--agent-id", "ci-1", "--json", env_extra=env)
        assert status.returncode == 0, status.stderr[-3000:]
        [row] = json.loads(status.stdout)["agents"]
        assert row["healthy"] and row["service"] == "active" and row["snapshot_id"] == first

        grown = invoke("build-snapshot", "--profile", "runner", "--from", str(first), "--force", "--json")
        assert grown.returncode == 0, grown.stderr[-3000:]
        second = json.loads(grown.stdout)["snapshot_id"]
        made.append(second)
        rolled = invoke("roll", "--profile", "runner", "--agent-id", "ci-1", "--json", env_extra=env)
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        [moved] = json.loads(rolled.stdout)["agents"]
        assert moved["status"] == "rolled" and moved["new_snapshot_id"] == second, moved
        [now] = [s for s in client.servers.get_all(label_selector="managed-by=imagekit,role=agent,profile=runner")
                 if s.status != "deleting"]
        assert now.name == "ci-1" and now.image.id == second
        with urllib.request.urlopen(f"http://{now.public_net.ipv4.ip}:8080/", timeout=30) as resp:
            assert json.load(resp)["agent_id"] == "ci-1"
    finally:
        invoke("deprovision", "--agent-id", "ci-1", env_extra=env)
        for fw in client.firewalls.get_all(label_selector=FIREWALL):
            if fw.id not in firewalls_before:
                fw.delete()
        for snap in made:
            client.images.get_by_id(snap).delete()
