"""Leftovers are never silent, in every command family that makes servers: the local cloud's fault switch refuses
one server deletion, and build-snapshot, provision, pool fill and run each say what was left and how to remove it
(a warning line, `leftovers` in the JSON result, a `cleanup failed` event where the command streams events) and
exit 125, whatever else happened (a build that failed, a job whose command succeeded). Each test then deletes
what was left, so the cloud is as it found it. The rules themselves: tests/imagekit/unit/test_leftover_ledger.py."""

from __future__ import annotations

import json

import pytest
from operator_cli import agent_env, invoke

from tests.conftest import changes, inventory, sweep

pytestmark = pytest.mark.e2e
REFUSE_DELETE = {"method": "DELETE", "path": r"^/v1/servers/\d+$", "code": "server_error", "times": 1}
FAIL_CREATE = {"action": "create_server", "times": 1}  # the server exists, its boot fails: the run unwinds


@pytest.fixture
def refusing(client, cloud_endpoint):
    """Set the faults; at the end, the one server left (and only it) is deleted and the cloud is as it was."""
    before = inventory(client)

    def refuse(*faults: dict) -> None:
        cloud_endpoint.admin("PUT", "/_admin/faults", list(faults))

    yield refuse
    cloud_endpoint.admin("DELETE", "/_admin/faults")
    left = changes(before, inventory(client)).get("left behind", {})
    sweep(client, {kind: set(ids) for kind, ids in left.items()})
    # one server, and nothing else but its own Primary IPs (deleted with it: auto_delete)
    assert set(left) <= {"servers", "primary_ips"} and len(left.get("servers", [])) == 1, left
    assert inventory(client) == before


def warned(proc, result: dict) -> dict:
    """The one leftover: exit 125, in the JSON result, and a warning line naming it and how to remove it."""
    assert proc.returncode == 125, proc.stderr[-3000:]
    [left] = result["leftovers"]
    assert left["kind"] == "server" and left["remove"] == f"hcloud server delete {left['id']}", left
    assert "server_error" in left["error"]
    assert f"warning: server {left['id']} ({left['name']}) could not be deleted: " in proc.stderr
    assert "Traceback" not in proc.stderr
    return left


def failed_cleanups(path) -> list[dict]:
    return [row for row in map(json.loads, path.read_text().splitlines()) if row["event"] == "cleanup failed"]


def test_a_build_that_failed_and_could_not_delete_its_builder(snapshot, refusing, tmp_path):
    refusing(FAIL_CREATE, REFUSE_DELETE)
    events = tmp_path / "events.jsonl"
    proc = invoke("build-snapshot", "--force", "--json", "--events", str(events))
    result = json.loads(proc.stdout)
    assert "step 'boot' failed" in result["error"] and "error: build-snapshot: step 'boot' failed" in proc.stderr
    left = warned(proc, result)
    assert left["name"].startswith("imagekit-build-") and "or `invoke gc`" in proc.stderr
    [event] = failed_cleanups(events)
    assert event["step"] == "builder server" and f"server {left['id']}" in event["detail"]


def test_a_provision_whose_failed_agent_could_not_be_deleted(snapshot, operator, profile_firewall, refusing,
                                                             tmp_path):
    _, sk = operator
    events = tmp_path / "events.jsonl"
    refusing(FAIL_CREATE, REFUSE_DELETE)
    proc = invoke("provision", "--agent-id", "leftover-1", "--no-tailscale", "--json", "--events", str(events),
                  env_extra=agent_env(sk))
    result = json.loads(proc.stdout)
    [agent] = result["agents"]
    assert agent["status"] == "failed" and "creating server" in agent["error"]
    left = warned(proc, result)
    assert left["name"] == "leftover-1" and "or `invoke gc`" in proc.stderr
    [event] = failed_cleanups(events)
    assert event["agent"] == "leftover-1" and event["step"] == "create server"


def test_a_pool_fill_whose_failed_host_could_not_be_deleted(snapshot, operator, profile_firewall, refusing, tmp_path):
    key, sk = operator
    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    refusing(FAIL_CREATE, REFUSE_DELETE)
    proc = invoke("pool", "fill", "--size", "1", "--json", env_extra=agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file)))
    result = json.loads(proc.stdout)
    assert len(result["failed"]) == 1 and result["created"] == []
    left = warned(proc, result)
    assert left["name"].startswith("imagekit-pool-") and "or `invoke gc`" in proc.stderr


def test_a_job_that_succeeded_but_could_not_delete_its_server(snapshot, operator, refusing):
    _, sk = operator
    refusing(REFUSE_DELETE)
    proc = invoke("run", "--job-id", "leftover-job", "--json", "--", "true", env_extra=agent_env(sk))
    result = json.loads(proc.stdout)
    [job] = result["jobs"]
    assert job["exit_code"] == 0 and job["error"] is None and result["exit_code"] == 0
    left = warned(proc, result)  # 125, not the command's 0: a server of the run is still there
    assert left["name"] == "imagekit-job-leftover-job"
