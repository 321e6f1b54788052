"""`invoke status` when it cannot check, and `status --watch` on real agents: without the operator's key, or with a
host whose sshd refuses, the agent is not called healthy and the output says what was not checked and why;
`--api-only` judges from the API and the tailnet alone; an unknown agent is an error; `--metrics` writes Prometheus
text. The watch alerts exactly once after `--alert-after` failed checks, says "recovered" once, reads the API
rarely, ends cleanly on SIGTERM and deletes nothing. Two agents from the session's snapshot for the module,
deprovisioned at its end (the cloud as the module found it)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from operator_cli import agent_env, invoke, pinned, start
from test_update import on_host

from imagekit import bundledigest
from imagekit.data import path as data_path
from tests.conftest import changes, inventory, sweep, wait_for
from tests.imagekit.unit.test_fleet_watch_logic import parse

pytestmark = pytest.mark.e2e
AGENTS = ["watch-1", "watch-2"]


@pytest.fixture(scope="module")
def agents(client, snapshot, operator, profile_firewall, tmp_path_factory):
    """({agent_id: provision's row}, the environment with the operator's key, the key)."""
    key, sk = operator
    key_file = tmp_path_factory.mktemp("operator") / "key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    before = inventory(client)
    made = invoke("provision", "--agent-id", ",".join(AGENTS), "--json", env_extra=agent_env(sk))
    try:
        assert made.returncode == 0, made.stderr[-3000:]
        yield ({a["agent_id"]: a for a in json.loads(made.stdout)["agents"]},
               agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file)), key)
    finally:
        assert invoke("deprovision", "--agent-id", ",".join(AGENTS)).returncode == 0
        after = inventory(client)
        diff = changes(before, after)
        sweep(client, {k: after[k] - before[k] for k in after})
        assert diff == {}, f"the module changed the cloud: {diff}"


def status(*args: str, env: dict) -> tuple[int, dict, str]:
    proc = invoke("status", "--agent-id", ",".join(AGENTS), "--json", *args, env_extra=env)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_unchecked_is_not_healthy_and_an_unknown_agent_is_an_error(agents, operator, tmp_path):
    rows, env, key = agents
    _, sk = operator
    code, keyless, err = status(env=agent_env(sk))  # no SSH_PRIVATE_KEY_PATH
    assert code == 1 and "2 of 2 agent(s) unchecked" in err, err[-2000:]
    for a in keyless["agents"]:
        assert a["healthy"] is None and a["service"] is None and a["problems"] == [], a
        assert a["unchecked"] == ["openclaw-agent: " + "SSH_PRIVATE_KEY_PATH is not set: set it to the private half "
                                  "of HETZNER_SSH_KEY_ID, or pass --api-only"]
    code, api_only, err = status("--api-only", env=agent_env(sk))
    assert code == 0, err[-2000:]
    example = bundledigest.digest(data_path("example_agent"))  # the code they run (default bundle): its digest
    assert [a["code_digest"] for a in api_only["agents"]] == [example] * len(AGENTS), api_only
    assert [(a["healthy"], a["tailscale_online"], a["service"]) for a in api_only["agents"]] == [(True, True, None)] * 2
    nobody = invoke("status", "--agent-id", "nobody", env_extra=env)
    assert nobody.returncode == 1 and "no such agent: nobody" in nobody.stderr, nobody.stderr[-2000:]

    # sshd on watch-2 stops (and comes back by itself 20 s later): refused, so unchecked, while watch-1 is checked.
    on_host(rows["watch-2"]["ipv4"], key, "systemd-run --on-active=20 systemctl start ssh && systemctl stop ssh")
    metrics = tmp_path / "fleet.prom"
    code, refused, err = status("--metrics", str(metrics), env=env)
    assert code == 1, err[-2000:]
    by_id = {a["agent_id"]: a for a in refused["agents"]}
    assert by_id["watch-1"]["healthy"] is True and by_id["watch-1"]["service"] == "active"
    assert by_id["watch-2"]["healthy"] is None and by_id["watch-2"]["ssh"] is False, by_id["watch-2"]
    assert by_id["watch-2"]["unchecked"][0].startswith(f"openclaw-agent: SSH to {rows['watch-2']['ipv4']} failed")
    assert f"watch-2: openclaw-agent: SSH to {rows['watch-2']['ipv4']} failed" in err
    families = parse(metrics.read_text())
    assert {s[0]["agent_id"]: s[1] for s in families["imagekit_agent_healthy"]["samples"]} == \
        {"watch-1": 1, "watch-2": 0}
    assert {s[0]["agent_id"]: s[1] for s in families["imagekit_agent_checked"]["samples"]} == \
        {"watch-1": 1, "watch-2": 0}
    assert families["imagekit_fleet_hourly_cost_euros"]["samples"][0][1] > 0
    wait_for(lambda: status(env=env)[0] == 0, 60, 2, "watch-2's sshd to come back")


def test_the_watch_alerts_once_and_says_recovered_once(agents, tmp_path):
    rows, env, key = agents
    ip = rows["watch-1"]["ipv4"]
    pin = pinned(ip)  # read before the watch: its API budget below is its own requests only
    alerts = tmp_path / "alerts.jsonl"
    watch = start("status", "--agent-id", ",".join(AGENTS), "--watch", "2", "--alert-after", "2", "--json",
                  "--alert-command", f"cat >> {alerts} && echo >> {alerts}", "--metrics", str(tmp_path / "w.prom"),
                  env_extra=env)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in watch.stdout), daemon=True)
    reader.start()

    def events(kind: str | None = None) -> list[dict]:
        found = [json.loads(line) for line in alerts.read_text().splitlines() if line] if alerts.exists() else []
        return [e for e in found if kind is None or e["event"] == kind]

    try:
        wait_for(lambda: len([c for c in lines if c.get("state") == "healthy"]) == 2, 60, 0.2, "both agents healthy")
        on_host(ip, key, "systemctl stop openclaw-agent", pin)
        stopped = time.monotonic()
        wait_for(lambda: events(), 3 * 2 + 4, 0.1, "the alert")
        print(f"alert {time.monotonic() - stopped:.1f} s after the service stopped")
        assert time.monotonic() - stopped <= 3 * 2 + 2  # within three intervals (and a sweep's own time)
        time.sleep(3 * 2)  # failing on: no second alert
        [alert] = events()
        assert alert["event"] == "unhealthy" and alert["agent_id"] == "watch-1" and alert["failures"] == 2, alert
        assert alert["problems"] == ["openclaw-agent is inactive"], alert
        assert alert["server_id"] == rows["watch-1"]["server_id"] and alert["failing_since"], alert
        on_host(ip, key, "systemctl start openclaw-agent", pin)
        wait_for(lambda: events("recovered"), 3 * 2 + 4, 0.1, "the recovery")
        time.sleep(2 * 2)
        assert [e["event"] for e in events()] == ["unhealthy", "recovered"]
        assert parse((tmp_path / "w.prom").read_text())["imagekit_agent_healthy"]["samples"] == \
            [({"agent_id": "watch-1"}, 1.0), ({"agent_id": "watch-2"}, 1.0)]
    finally:
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(30)
        reader.join(10)
        stderr = watch.stderr.read()
    assert code == 0, stderr[-2000:]
    summary = lines[-1]
    print("watch:", summary)
    states = [(c["agent_id"], c["state"]) for c in lines if "state" in c]
    assert states == [("watch-1", "healthy"), ("watch-2", "healthy"), ("watch-1", "unhealthy"), ("watch-1", "healthy")]
    assert summary["alerts"] == 1 and summary["recoveries"] == 1 and summary["sweeps"] >= 8
    # The API was read at the start and once more to confirm the alert: the rest were SSH sweeps.
    assert summary["api_refreshes"] == 2 and summary["api_requests"] <= 2 * 2, summary
    assert wait_for(lambda: invoke("status", "--agent-id", ",".join(AGENTS), env_extra=env).returncode == 0, 30, 1,
                    "a healthy fleet after the watch")
