"""provision end to end on the local cloud: a fleet from a real snapshot, the fallback's parity,
idempotence, the fleet's lifecycle tasks, bad input and failures leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hcloud.images import Image
from hcloud.server_types import ServerType

from imagekit import playbook, tailnet, verify
from imagekit.build import STANDIN_APT_SOURCE
from imagekit.keys import new_ed25519
from imagekit.localcloud import control
from imagekit.target import Target

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
API_URL = "https://agents.example.test/api"


def invoke(*args: str, env_extra: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HCLOUD_TOKEN", "HETZNER_API_TOKEN", "HETZNER_SNAPSHOT_ID", "HETZNER_SSH_KEY_ID")
           and not k.startswith("TAILSCALE_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


def standin() -> tailnet.Tailnet:
    """The local cloud's Tailscale stand-in, through the client provisioning uses."""
    ep = control.current()
    return tailnet.Tailnet(tailnet.settings(Target(ep.endpoint, ep.token, local=True)))


@pytest.fixture(scope="module")
def snapshot(client):
    """One real snapshot for this module; at the end it, the profile's firewall and the key go."""
    proc = invoke("build-snapshot", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    image_id = json.loads(proc.stdout)["snapshot_id"]
    yield image_id
    invoke("deprovision", "--selector", "role=agent")  # what a failed test left (the tests assert on it)
    for fw in client.firewalls.get_all(label_selector="managed-by=imagekit,role=firewall"):
        fw.delete()
    client.images.get_by_id(image_id).delete()


@pytest.fixture(scope="module")
def operator(client, snapshot):
    """The operator's own key (HETZNER_SSH_KEY_ID): the one way into provisioned hosts."""
    key = new_ed25519("operator")
    sk = client.ssh_keys.create(name="operator", public_key=key.public_openssh)
    yield key, sk
    sk.delete()


def servers(client) -> list:
    return [s for s in client.servers.get_all() if s.status != "deleting"]


def temporary_keys(client) -> list:
    return client.ssh_keys.get_all(label_selector="managed-by=imagekit,role=provision")


def host_suite(ip: str, key, agent: str, mode: str, tags=("tag:openclaw-agent",)) -> None:
    """The image suite and the agent suite (imagekit/checks) against one provisioned host."""
    expect = playbook.load("agent", {
        "os": "debian-12", "package_source": "local", "build_id": "x", "built_at": "x", "source_revision": "x",
        "base_image": "debian-12", "profile": "agent", "standin_apt_source": STANDIN_APT_SOURCE}).expect
    expect["agent"] = {"agent_id": agent, "server_name": agent.lower().replace("_", "-"), "api_url": API_URL,
                       "mode": mode, "tags": list(tags), "authorized_keys": [key.public_openssh.split()[1]]}
    verify.run_suite(ip, key, expect, clone=True, suites=verify.AGENT_HOST)


def test_fleet_from_snapshot_then_idempotent_then_deprovisioned(client, snapshot, operator):
    key, sk = operator
    env = {"HETZNER_SSH_KEY_ID": str(sk.id), "AURA_API_URL": API_URL}
    proc = invoke("provision", "--count", "3", "--agent-id", "fleet", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    agents = json.loads(proc.stdout)["agents"]
    assert [a["agent_id"] for a in agents] == ["fleet-1", "fleet-2", "fleet-3"]
    assert {a["mode"] for a in agents} == {"snapshot"} and {a["status"] for a in agents} == {"ready"}
    assert all(a["seconds_to_ready"] > 0 and a["server_id"] and a["ipv4"] for a in agents)
    for event in ("created", "booting", "cloud-init done", "enrolled", "ready"):
        assert f"[fleet-1] {event}" in proc.stderr
    for a in agents:
        host_suite(a["ipv4"], key, a["agent_id"], "snapshot")
    devices = {d["hostname"]: d for d in standin().devices()}
    for a in agents:
        assert devices[a["name"]]["ephemeral"] is True and devices[a["name"]]["tags"] == ["tag:openclaw-agent"]
    # Every auth key is revoked once its agent is ready: the copy in the user data is worthless.
    assert all(key["invalid"] for key in standin().keys())
    secret = control.status()["tailscale_standin_oauth_client_secret"]
    assert secret not in proc.stdout + proc.stderr
    assert [k.id for k in client.ssh_keys.get_all()] == [sk.id]  # provisioning's temporary key is gone

    before = {s.id for s in servers(client)}
    again = invoke("provision", "--agent-id", "fleet-2", "--json", env_extra=env)
    assert again.returncode == 0, again.stderr[-2000:]
    [existing] = json.loads(again.stdout)["agents"]
    assert existing["status"] == "existing" and existing["server_id"] == agents[1]["server_id"]
    assert {s.id for s in servers(client)} == before

    listed = json.loads(invoke("list", "--json").stdout)
    assert sorted(a["agent_id"] for a in listed["agents"]) == ["fleet-1", "fleet-2", "fleet-3"]
    assert [s["snapshot_id"] for s in listed["snapshots"]] == [snapshot]

    gone = invoke("deprovision", "--agent-id", "fleet-1,fleet-2", "--agent-id", "fleet-3")
    assert gone.returncode == 0, gone.stderr[-2000:]
    assert servers(client) == []
    assert not [d for d in standin().devices() if d["hostname"].startswith("fleet-")]
    assert invoke("deprovision", "--agent-id", "fleet-1").returncode == 0  # nothing left: still fine
    assert [i.id for i in client.images.get_all(type="snapshot")] == [snapshot]
    assert [f.name for f in client.firewalls.get_all()] == ["imagekit-agent"]


def test_fallback_host_passes_the_same_suite(client, snapshot, operator):
    key, sk = operator
    proc = invoke("provision", "--agent-id", "Fall_Back", "--mode", "fallback", "--json",
                  env_extra={"HETZNER_SSH_KEY_ID": str(sk.id), "AURA_API_URL": API_URL})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [agent] = json.loads(proc.stdout)["agents"]
    assert agent["mode"] == "fallback" and agent["name"] == "fall-back" and agent["status"] == "ready"
    try:
        host_suite(agent["ipv4"], key, "Fall_Back", "fallback")
    finally:
        assert invoke("deprovision", "--agent-id", "Fall_Back").returncode == 0
    assert servers(client) == []


def test_no_tailscale_and_no_wait(client, snapshot, operator):
    key, sk = operator
    proc = invoke("provision", "--agent-id", "quiet", "--no-tailscale", "--no-wait", "--json",
                  env_extra={"HETZNER_SSH_KEY_ID": str(sk.id), "AURA_API_URL": API_URL})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [agent] = json.loads(proc.stdout)["agents"]
    assert agent["status"] == "created" and agent["seconds_to_ready"] is None
    try:
        # Nobody waited: the host still gets there by itself, with no Tailscale and no temporary key.
        deadline = time.monotonic() + 180
        while True:
            try:
                host_suite(agent["ipv4"], key, "quiet", "snapshot", tags=())
                break
            except verify.VerificationFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)
        assert "quiet" not in {d["hostname"] for d in standin().devices()}
    finally:
        assert invoke("deprovision", "--agent-id", "quiet").returncode == 0


def test_one_failing_agent_does_not_stop_the_others(client, snapshot, cloud_endpoint):
    cloud_endpoint.admin("PUT", "/_admin/faults", [{"action": "create_server", "times": 1}])
    try:
        proc = invoke("provision", "--agent-id", "pair-1,pair-2", "--json")
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    assert proc.returncode != 0
    agents = {a["agent_id"]: a for a in json.loads(proc.stdout)["agents"]}
    failed = [a for a in agents.values() if a["status"] == "failed"]
    ready = [a for a in agents.values() if a["status"] == "ready"]
    assert len(failed) == 1 and len(ready) == 1
    assert "create server" in failed[0]["error"] or "boot" in failed[0]["error"]
    assert "failed" in proc.stderr and failed[0]["agent_id"] in proc.stderr
    assert [s.name for s in servers(client)] == [ready[0]["name"]]  # the failed one's server is gone
    assert failed[0]["name"] not in {d["hostname"] for d in standin().devices()}
    assert invoke("deprovision", "--selector", "agent-id in (pair-1,pair-2)").returncode == 0
    assert servers(client) == [] and temporary_keys(client) == []


def test_sigint_mid_provision_leaves_nothing(client, snapshot):
    env = {k: v for k, v in os.environ.items() if k not in ("HCLOUD_TOKEN", "HETZNER_API_TOKEN")}
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "provision", "--agent-id", "int-1,int-2"], cwd=ROOT,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "created" not in seen:
        seen += proc.stderr.readline()
    assert "created" in seen, seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "interrupted" in (seen + err).lower()
    assert servers(client) == [] and temporary_keys(client) == []
    assert not {"int-1", "int-2"} & {d["hostname"] for d in standin().devices()}


def test_render_cloud_init_creates_nothing_and_masks_the_key(client, snapshot):
    proc = invoke("render-cloud-init", "--agent-id", "look-1", env_extra={"AURA_API_URL": API_URL})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#cloud-config\n") and "AGENT_ID=look-1" in proc.stdout
    assert "MASKED (a single-use Tailscale auth key" in proc.stdout and "tskey-auth-k" not in proc.stdout
    assert servers(client) == [] and temporary_keys(client) == []


def test_prune_keeps_the_newest_per_profile(client, snapshot):
    sk_key = new_ed25519()
    sk = client.ssh_keys.create(name="prune", public_key=sk_key.public_openssh)
    resp = client.servers.create(name="prune-src", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[sk])
    made = []
    try:
        resp.action.wait_until_finished(120)
        for i in range(3):
            r = resp.server.create_image(type="snapshot", description=f"prune-{i}",
                                         labels={"managed-by": "imagekit", "profile": "prunetest"})
            r.action.wait_until_finished(120)
            made.append(r.image.id)
            time.sleep(1.1)  # distinct creation times
    finally:
        client.servers.delete(resp.server).wait_until_finished(120)
        sk.delete()
    proc = invoke("prune-snapshots", "--keep", "1", "--profile", "prunetest", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["deleted"]) == sorted(made[:2])
    left = {i.id for i in client.images.get_all(type="snapshot")}
    assert left == {snapshot, made[2]}
    client.images.get_by_id(made[2]).delete()
    assert invoke("prune-snapshots", "--keep", "0").returncode != 0


@pytest.mark.parametrize("args, env, message", [
    (["--agent-id", "bad id!"], {}, "cannot become a hostname"),
    (["--agent-id=-leading"], {}, "cannot become a hostname"),
    (["--agent-id", "x" * 64], {}, "at most 63"),
    (["--agent-id", "a,A"], {}, "name the same server"),
    (["--count", "0"], {}, "--count 0"),
    (["--agent-id", "ok-1", "--mode", "fast"], {}, "--mode"),
    (["--agent-id", "ok-1", "--snapshot", "999999"], {}, "snapshot '999999' not found"),
    (["--agent-id", "ok-1", "--server-type", "cx999"], {}, "server type 'cx999' does not exist"),
    (["--agent-id", "ok-1", "--location", "mars1"], {}, "location 'mars1' does not exist"),
    (["--agent-id", "ok-1", "--api-url", "not a url"], {}, "not a plain http(s) URL"),
    (["--agent-id", "ok-1"], {"TAILSCALE_OAUTH_CLIENT_ID": "kabc"}, "TAILSCALE_OAUTH_CLIENT_SECRET is not set"),
    (["--agent-id", "ok-1"], {"HETZNER_SSH_KEY_ID": "424242"}, "HETZNER_SSH_KEY_ID"),
    (["--agent-id", "ok-1", "--token-env", "NO_SUCH_VAR"], {}, "NO_SUCH_VAR"),
    (["--agent-id", "ok-1", "--token-file", "/nonexistent/token"], {}, "cannot read the API token file"),
    (["--agent-id", "ok-1", "--mode", "fallback", "--no-wait"], {}, "cannot skip waiting"),
    (["--agent-id", "ok-1", "--agent-bundle", "BIG"], {}, "over the API's limit"),
])
def test_bad_input_fails_before_creating_anything(client, snapshot, tmp_path, args, env, message):
    if "BIG" in args:  # random bytes do not compress: the user data outgrows 32 KiB
        (tmp_path / "index.js").write_text("// " + os.urandom(40_000).hex())
        args = [str(tmp_path) if a == "BIG" else a for a in args]
    before = [s.id for s in client.servers.get_all()], [k.id for k in client.ssh_keys.get_all()]
    proc = invoke("provision", *args, env_extra=env, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert ([s.id for s in client.servers.get_all()], [k.id for k in client.ssh_keys.get_all()]) == before


def test_wrong_tokens_are_rejected_up_front(client, snapshot, tmp_path, cloud_endpoint):
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    proc = invoke("provision", "--agent-id", "ok-1", "--token-file", str(token_file),
                  env_extra={"HCLOUD_ENDPOINT": cloud_endpoint.endpoint})
    assert proc.returncode != 0 and "rejected (401)" in proc.stderr, proc.stderr[-2000:]
    assert "not-the-token" not in proc.stderr
    proc = invoke("provision", "--agent-id", "ok-1",
                  env_extra={"TAILSCALE_OAUTH_CLIENT_ID": "kwrong", "TAILSCALE_OAUTH_CLIENT_SECRET": "tskey-client-x",
                             "TAILSCALE_API_URL": control.status()["tailscale_standin_api"]})
    assert proc.returncode != 0 and "rejected the OAuth client" in proc.stderr, proc.stderr[-2000:]
    assert "tskey-client-x" not in proc.stderr
    assert servers(client) == []
