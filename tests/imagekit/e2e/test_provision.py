"""provision end to end on the local cloud: a fleet from a real snapshot, the fallback's parity,
idempotence, the fleet's lifecycle tasks, failures leaving nothing behind, and security on real
hosts. Bad input is checked before anything exists: tests/imagekit/unit/test_input_checks.py."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.request

import big_bundle
import pytest
from hcloud.images import Image
from hcloud.server_types import ServerType
from operator_cli import API_URL, ROOT, agent_env, environment, invoke, pinned

from imagekit import tailnet
from imagekit.host import checks, playbook
from imagekit.host.keys import new_ed25519
from imagekit.steps.install import playbook_variables
from imagekit.target import Target
from localcloud import client as localcloud

pytestmark = pytest.mark.e2e


def standin() -> tailnet.Tailnet:
    """The local cloud's Tailscale stand-in, through the client provisioning uses."""
    ep = localcloud.current()
    return tailnet.Tailnet(tailnet.credentials(Target(ep.endpoint, ep.token, local=True)))


def decoy_device(hostname: str) -> str:
    """A person's laptop that happens to carry an agent's hostname: untagged, enrolled before the agent."""
    ep = localcloud.current()
    laptop = tailnet.Tailnet(dataclasses.replace(tailnet.credentials(Target(ep.endpoint, ep.token, local=True)),
                                                 tags=()))
    _, key = laptop.mint_auth_key("a person's laptop")
    req = urllib.request.Request(ep.base + "/tailscale/standin/register", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"authkey": key, "hostname": hostname}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["device_id"]


def cloud_log_count(method: str, path: str) -> int:
    """How often the local cloud was asked ``method path`` (its request log)."""
    return sum(1 for r in localcloud.current().admin("GET", "/_admin/requests")["requests"]
               if r["method"] == method and r["path"] == path)


def servers(client, selector: str = "managed-by=imagekit,role=agent") -> list:
    return [s for s in client.servers.get_all(label_selector=selector) if s.status != "deleting"]


def temporary_keys(client) -> list:
    return client.ssh_keys.get_all(label_selector="managed-by=imagekit,role=provision")


def host_suite(ip: str, key, agent: str, mode: str, tags=("tag:openclaw-agent",), profile: str = "agent") -> None:
    """The image checks and the agent checks (imagekit/data/checks) against one provisioned host."""
    expect = playbook.load(profile, playbook_variables(profile, "debian-12", "local", True, "x")).expect
    expect["agent"] = {"agent_id": agent, "server_name": agent.lower().replace("_", "-"), "api_url": API_URL,
                       "mode": mode, "tags": list(tags), "authorized_keys": [key.public_openssh.split()[1]]}
    checks.run_checks(ip, key, pinned(ip), expect, clone=True, suites=checks.AGENT_HOST)


def provision_events_tell_each_agents_story(path, deployment: str) -> None:
    """--events: lines parse, in time order, each agent's milestones in its order, the run's outcome last;
    the workflow's gantt chart has a section per agent."""
    from imagekit.events import gantt

    lines = path.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows[0]["event"] == "run started" and rows[-1] == {**rows[-1], "event": "run finished",
                                                              "detail": "succeeded: 3 agent(s)"}
    assert {r["run_id"] for r in rows} == {deployment}
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    for agent in ("fleet-1", "fleet-2", "fleet-3"):
        mine = [r["event"] for r in rows if r["agent"] == agent and not r["event"].startswith("step ")]
        assert mine == ["created", "booting", "ssh", "cloud-init done", "enrolled", "ready"], mine
        assert {r["step"] for r in rows if r["agent"] == agent and r["event"] == "step finished"} >= {
            "create server", "ssh", "agent running", "mark ready"}
    chart = gantt(lines)
    assert chart.startswith("gantt") and all(f"section fleet-{i}" in chart for i in (1, 2, 3))


def test_fleet_from_snapshot_then_idempotent_then_deprovisioned(fleet, snapshot, operator, tmp_path):
    client = fleet
    key, sk = operator
    laptop = decoy_device("fleet-1")
    env = agent_env(sk)
    events = tmp_path / "events.jsonl"
    keys_made = cloud_log_count("POST", "/v1/ssh_keys")
    proc = invoke("provision", "--count", "3", "--agent-id", "fleet", "--json", "--events", str(events),
                  env_extra=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The project holds the operator's key: the run's own key travels in the user data, none enters the project
    # (and host_suite below finds only the operator's key left on each host).
    assert cloud_log_count("POST", "/v1/ssh_keys") == keys_made
    agents = json.loads(proc.stdout)["agents"]
    provision_events_tell_each_agents_story(events, json.loads(proc.stdout)["deployment"])
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
    secret = localcloud.status()["tailscale_standin_oauth_client_secret"]
    assert secret not in proc.stdout + proc.stderr
    assert temporary_keys(client) == []  # provisioning's temporary key is gone

    before = {s.id for s in servers(client)}
    again = invoke("provision", "--agent-id", "fleet-2", "--json", env_extra=env)
    assert again.returncode == 0, again.stderr[-2000:]
    [existing] = json.loads(again.stdout)["agents"]
    assert existing["status"] == "existing" and existing["server_id"] == agents[1]["server_id"]
    assert {s.id for s in servers(client)} == before

    listed = json.loads(invoke("list", "--json").stdout)
    assert {"fleet-1", "fleet-2", "fleet-3"} <= {a["agent_id"] for a in listed["agents"]}
    assert snapshot in [s["snapshot_id"] for s in listed["snapshots"]]

    gone = invoke("deprovision", "--agent-id", "fleet-1,fleet-2", "--agent-id", "fleet-3")
    assert gone.returncode == 0, gone.stderr[-2000:]
    assert servers(client, "agent-id in (fleet-1,fleet-2,fleet-3)") == []
    # The agents' devices are gone; the laptop that shares a hostname with one of them is not.
    assert [d["id"] for d in standin().devices() if d["hostname"].startswith("fleet-")] == [laptop]
    standin().delete_device(laptop)
    assert invoke("deprovision", "--agent-id", "fleet-1").returncode == 0  # nothing left: still fine


SECRET_VALUE = "agent-planted-secret-4d1e 'quoted' $HOME"


def secrets_file(tmp_path):
    path = tmp_path / "agent.env"
    path.write_text(f"# the agents' credentials\nexport AGENT_TOKEN=\"{SECRET_VALUE.replace('$', chr(92) + '$')}\"\n")
    return path


def agent_secret(conn) -> tuple[str, str]:
    """(the secret as the agent's process sees it, owner and mode of the secrets file) on a host."""
    from imagekit.host import ssh

    _, env, _ = ssh.run(conn, "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value openclaw-agent)/environ "
                              "| sed -n 's/^AGENT_TOKEN=//p'")
    _, perms, _ = ssh.run(conn, "stat -c '%U %a' /opt/openclaw/config/secrets.env")
    return env.rstrip("\n"), perms.strip()


@pytest.mark.slow  # a full install: minutes
def test_fallback_host_passes_the_same_suite(fleet, operator, tmp_path):
    """The full install, checked with the operator's own key (SSH_PRIVATE_KEY_PATH): no temporary key. Its
    secrets arrive over SSH as on snapshot hosts, and so does its code: a real agent's size (big_bundle: 50 MB in
    5 000 files, links inside), far over the user data's limit, whose tree the host then has and whose code the
    service runs."""
    from imagekit.host import ssh

    key, sk = operator
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    token = os.urandom(6).hex()
    code = big_bundle.make(tmp_path / "agent", token)
    keys_before = cloud_log_count("POST", "/v1/ssh_keys")
    proc = invoke("provision", "--agent-id", "Fall_Back", "--mode", "fallback", "--json",
                  "--secrets-file", str(secrets_file(tmp_path)), "--agent-bundle", str(code),
                  env_extra=agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file)))
    assert cloud_log_count("POST", "/v1/ssh_keys") == keys_before
    assert proc.returncode == 0, proc.stderr[-3000:]
    [agent] = json.loads(proc.stdout)["agents"]
    assert agent["mode"] == "fallback" and agent["name"] == "fall-back" and agent["status"] == "ready"
    try:
        host_suite(agent["ipv4"], key, "Fall_Back", "fallback")
        conn = ssh.connect(agent["ipv4"], key, pin=pinned(agent["ipv4"]))
        try:
            assert agent_secret(conn) == (SECRET_VALUE, "openclaw 600")
            assert ssh.run(conn, big_bundle.TREE)[1].strip() == big_bundle.tree(code)
            assert ssh.run(conn, big_bundle.runs_it(token))[1].split() == ["active", "1"]
            user_data = ssh.run(conn, "cat /var/lib/cloud/instance/user-data.txt")[1]
            assert "path: /var/lib/imagekit/agent/bundle.tar.gz" not in user_data and len(user_data) < 32768
        finally:
            conn.close()
        line = next(x for x in proc.stderr.splitlines() if x.startswith("[fall-back] code staged: "))
        print(line)  # MB and seconds staged over SSH
    finally:
        assert invoke("deprovision", "--agent-id", "Fall_Back").returncode == 0


def test_no_tailscale_and_no_wait_with_settings_from_a_config_file(fleet, operator, tmp_path):
    key, sk = operator
    config = tmp_path / "imagekit.yml"
    config.write_text(f"HETZNER_SSH_KEY_ID: {sk.id}\nAURA_API_URL: {API_URL}\nIMAGEKIT_SERVER_TYPE: cx23\n")
    proc = invoke("provision", "--agent-id", "quiet", "--no-tailscale", "--no-wait", "--json",
                  env_extra={"IMAGEKIT_CONFIG": str(config)})
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
            except checks.ChecksFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)
        assert "quiet" not in {d["hostname"] for d in standin().devices()}
    finally:
        assert invoke("deprovision", "--agent-id", "quiet").returncode == 0


def test_one_failing_agent_does_not_stop_the_others(fleet, cloud_endpoint):
    client = fleet
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
    pair = "agent-id in (pair-1,pair-2)"
    assert [s.name for s in servers(client, pair)] == [ready[0]["name"]]  # the failed one's server is gone
    assert failed[0]["name"] not in {d["hostname"] for d in standin().devices()}
    assert invoke("deprovision", "--selector", pair).returncode == 0
    assert servers(client, pair) == [] and temporary_keys(client) == []


def test_render_cloud_init_creates_nothing_and_masks_the_key(cloud_unchanged):
    proc = invoke("render-cloud-init", "--agent-id", "look-1", env_extra={"AURA_API_URL": API_URL})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#cloud-config\n") and "AGENT_ID=look-1" in proc.stdout
    assert "MASKED (a single-use Tailscale auth key" in proc.stdout and "tskey-auth-k" not in proc.stdout


def test_prune_keeps_the_newest_per_profile(cloud_unchanged):
    client = cloud_unchanged
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
    left = {i.id for i in client.images.get_all(type="snapshot", label_selector="profile=prunetest")}
    assert left == {made[2]}
    client.images.get_by_id(made[2]).delete()
    assert invoke("prune-snapshots", "--keep", "0").returncode != 0


def test_wrong_tokens_are_rejected_up_front(fleet, tmp_path, cloud_endpoint):
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    proc = invoke("provision", "--agent-id", "ok-1", "--token-file", str(token_file),
                  env_extra={"HCLOUD_ENDPOINT": cloud_endpoint.endpoint})
    assert proc.returncode != 0 and "rejected (401)" in proc.stderr, proc.stderr[-2000:]
    assert "not-the-token" not in proc.stderr
    proc = invoke("provision", "--agent-id", "ok-1",
                  env_extra={"TAILSCALE_OAUTH_CLIENT_ID": "kwrong", "TAILSCALE_OAUTH_CLIENT_SECRET": "tskey-client-x",
                             "TAILSCALE_API_URL": localcloud.status()["tailscale_standin_api"]})
    assert proc.returncode != 0 and "rejected the OAuth client" in proc.stderr, proc.stderr[-2000:]
    assert "tskey-client-x" not in proc.stderr


# --- security, checked on real machines --------------------------------------------------------------


def login(ip: str, key) -> bool:
    """One SSH login with the operator's key: refused, dropped or accepted."""
    from imagekit.host import ssh

    try:
        ssh.connect(ip, key, pin=pinned(ip), timeout=5, connect_timeout=3).close()
        return True
    except Exception:
        return False


def test_fail2ban_bans_and_unbans_and_ufw_filters(fleet, operator):
    import paramiko

    from imagekit.host import ssh

    key, sk = operator
    proc = invoke("provision", "--agent-id", "guard", "--json",
                  env_extra=agent_env(sk))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [agent] = json.loads(proc.stdout)["agents"]
    ip = agent["ipv4"]
    try:
        conn = ssh.connect(ip, key, pin=pinned(ip))
        # UFW: a port something listens on but UFW does not allow is unreachable from outside; 22 is.
        code, out, err = ssh.run(conn, "nohup python3 -m http.server 8080 >/dev/null 2>&1 & sleep 1; "
                                       "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/')\"")
        assert code == 0, err  # the listener really answers, inside
        import socket

        with pytest.raises(OSError):
            socket.create_connection((ip, 8080), timeout=3).close()
        # fail2ban (the test profile's short ban): three invalid logins ban this host, then the ban ends.
        ssh.run(conn, "printf '[sshd]\\nbantime = 20\\nfindtime = 120\\nmaxretry = 3\\n' "
                      "> /etc/fail2ban/jail.d/zz-test.local && systemctl restart fail2ban && "
                      "timeout 30 sh -c 'until fail2ban-client status sshd; do sleep 0.5; done'")
        conn.close()
        for _ in range(5):
            try:
                c = paramiko.SSHClient()
                c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
                c.connect(ip, username="no-such-user", password="wrong", timeout=5, allow_agent=False,
                          look_for_keys=False)
            except Exception:
                pass
            finally:
                c.close()
        banned_at = time.monotonic()
        deadline = banned_at + 30
        while login(ip, key) and time.monotonic() < deadline:
            time.sleep(1)
        assert not login(ip, key), "fail2ban did not ban the host after repeated failed logins"
        deadline = time.monotonic() + 90
        while not login(ip, key) and time.monotonic() < deadline:
            time.sleep(2)
        assert login(ip, key), "the ban did not end"
    finally:
        assert invoke("deprovision", "--agent-id", "guard").returncode == 0


def fleet_status_on_the_twins(key, sk, agents: list[dict], tmp_path) -> None:
    """`invoke status` on the two healthy agents (the API asked once for the servers), then with one agent's
    service stopped: exit 1, that agent's problem named, the other healthy."""
    from imagekit.host import ssh

    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    env = agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file))
    asked = cloud_log_count("GET", "/v1/servers")
    healthy = invoke("status", "--agent-id", "twin-1,twin-2", "--json", env_extra=env)
    assert cloud_log_count("GET", "/v1/servers") == asked + 1
    assert healthy.returncode == 0, healthy.stderr[-2000:]
    rows = {a["agent_id"]: a for a in json.loads(healthy.stdout)["agents"]}
    assert sorted(rows) == ["twin-1", "twin-2"]
    for a in rows.values():
        assert a["healthy"] and a["ssh"] and a["service"] == "active" and a["tailscale_online"] is True, a
        assert a["snapshot_id"] == a["newest_snapshot_id"] and a["drift"] is False and a["problems"] == []
        assert a["provisioned_at"].endswith("Z") and a["uptime_seconds"] > 0
    conn = ssh.connect(agents[0]["ipv4"], key, pin=pinned(agents[0]["ipv4"]))
    try:
        ssh.run(conn, "systemctl stop openclaw-agent")
    finally:
        conn.close()
    sick = invoke("status", "--agent-id", "twin-1,twin-2", env_extra=env)
    assert sick.returncode == 1
    assert f"{agents[0]['agent_id']}: openclaw-agent is inactive" in sick.stderr, sick.stderr[-2000:]
    assert "1 of 2 agent(s) unhealthy" in sick.stderr
    [other] = [a for a in agents[1:]]
    just_one = invoke("status", "--agent-id", other["agent_id"], "--json", env_extra=env)
    assert just_one.returncode == 0 and [a["agent_id"] for a in json.loads(just_one.stdout)["agents"]] == \
        [other["agent_id"]]


def test_clones_are_distinct_and_no_secret_shows_in_ps_or_logs(fleet, operator, tmp_path):
    """Two agents from one snapshot: own machine-id and host keys; `invoke status` sees them healthy, then
    one sick. While they are provisioned, no
    process's command line and no log holds the API token, the OAuth secret, an auth key or the agents'
    own secret (--secrets-file), which is in the agents' environment and nowhere else: not in the user
    data, the cloud-init logs, the journal or any output."""
    from imagekit.host import ssh
    from localcloud.paths import layout

    key, sk = operator
    status = localcloud.status()
    secrets_ = [status["token"], status["tailscale_standin_oauth_client_secret"], "tskey-auth-", "tskey-api-",
                "agent-planted-secret-4d1e"]
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "provision", "--agent-id", "twin-1,twin-2", "--json",
                             "--secrets-file", str(secrets_file(tmp_path))],
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environment(agent_env(sk)))
    seen_in_ps = set()
    while proc.poll() is None:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        seen_in_ps |= {s for s in secrets_ if s in ps}
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert seen_in_ps == set()
    assert not [s for s in secrets_ if s in out + err]
    agents = json.loads(out)["agents"]
    try:
        ids = []
        for a in agents:
            conn = ssh.connect(a["ipv4"], key, pin=pinned(a["ipv4"]))
            _, machine_id, _ = ssh.run(conn, "cat /etc/machine-id")
            _, host_key, _ = ssh.run(conn, "cat /etc/ssh/ssh_host_ed25519_key.pub")
            _, logs, _ = ssh.run(conn, "cat /var/log/cloud-init-output.log /var/log/cloud-init.log; journalctl -b "
                                       "--no-pager -o cat")
            # the user data holds the (revoked) auth key by design, but never the agent's own secret
            _, user_data, _ = ssh.run(conn, "cat /var/lib/cloud/instance/user-data.txt; "
                                            "grep -rl agent-planted-secret /var/lib/cloud /var/log /etc")
            assert agent_secret(conn) == (SECRET_VALUE, "openclaw 600")
            conn.close()
            assert not [s for s in secrets_ if s in logs], a["name"]
            assert "agent-planted-secret" not in user_data and "#cloud-config" in user_data, a["name"]
            ids.append((machine_id.strip(), host_key.split()[1]))
        assert ids[0][0] != ids[1][0] and ids[0][1] != ids[1][1]
        fleet_status_on_the_twins(key, sk, agents, tmp_path)
        L = layout()
        host_logs = [L.api_log, *L.root.joinpath("machines").glob("*.log")]
        for path in host_logs:
            text = path.read_text(errors="replace")
            assert not [s for s in secrets_[1:] if s in text], path
    finally:
        assert invoke("deprovision", "--agent-id", "twin-1,twin-2").returncode == 0
