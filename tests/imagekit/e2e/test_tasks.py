"""The operator's entry points: the Invoke tasks, run as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]


def invoke(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def test_cloud_status_json_gives_a_working_endpoint(cloud_endpoint):
    proc = invoke("cloud-status", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["endpoint"].endswith("/v1") and status["token"] == cloud_endpoint.token


def test_roundtrip_task_without_token_uses_local_cloud_and_leaves_nothing(cloud_unchanged):
    env = {k: v for k, v in os.environ.items() if k not in ("HCLOUD_TOKEN", "HETZNER_API_TOKEN")}
    proc = invoke("roundtrip", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "using the local cloud" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["seconds"]["cloud_init"] >= result["seconds"]["ssh"] > 0
