"""The operator's entry points: the Invoke tasks, run as an operator runs them, and the errors
every one of them gives for a cloud it cannot use."""

from __future__ import annotations

import json

import pytest
from operator_cli import invoke

pytestmark = pytest.mark.e2e

# Every task that talks to a cloud, with the least it needs to get that far.
CLOUD_TASKS = [
    ["build-snapshot"], ["verify"], ["provision", "--agent-id", "a", "--no-tailscale"],
    ["deprovision", "--agent-id", "a"], ["list"], ["prune-snapshots"], ["gc"], ["roundtrip"],
]


def test_cloud_status_json_gives_a_working_endpoint(cloud_endpoint):
    proc = invoke("cloud-status", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["endpoint"].endswith("/v1") and status["token"] == cloud_endpoint.token


def test_roundtrip_task_without_token_uses_local_cloud_and_leaves_nothing(cloud_unchanged):
    proc = invoke("roundtrip", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "using the local cloud" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["seconds"]["cloud_init"] >= result["seconds"]["ssh"] > 0


@pytest.mark.parametrize("args", CLOUD_TASKS, ids=[a[0] for a in CLOUD_TASKS])
@pytest.mark.parametrize("cloud", ["unreachable", "bad-token"])
def test_a_cloud_it_cannot_use_is_one_error_line(args, cloud, cloud_endpoint, cloud_unchanged):
    endpoint = "http://127.0.0.1:9/v1" if cloud == "unreachable" else cloud_endpoint.endpoint
    proc = invoke(*args, env_extra={"HCLOUD_TOKEN": "not-the-token", "HCLOUD_ENDPOINT": endpoint,
                                    "AURA_API_URL": "https://agents.example.test"}, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {args[0]}: "), proc.stderr
    expected = "cannot reach http://127.0.0.1:9/v1" if cloud == "unreachable" else "token was rejected (401)"
    assert expected in lines[0] and "not-the-token" not in proc.stderr


def test_errors_are_json_when_json_is_asked_for():
    proc = invoke("list", "--json", env_extra={"HCLOUD_TOKEN": "x", "HCLOUD_ENDPOINT": "http://127.0.0.1:9/v1"})
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"].startswith("list: cannot reach")


def test_bench_refuses_a_real_cloud():
    proc = invoke("bench", env_extra={"HCLOUD_TOKEN": "x", "HCLOUD_ENDPOINT": "http://127.0.0.1:9/v1"})
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: bench: bench measures the local cloud (its request log counts API calls): unset HCLOUD_TOKEN"]
