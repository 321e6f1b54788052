"""Capacity failover end to end: with the local cloud's fault switch answering `resource_unavailable` to a
server create, `--location A,B` lands the agent, the job and the builder in the next location, says so, and
labels where it landed; when every listed location is full the run fails with nothing left."""

from __future__ import annotations

import json

import pytest
from operator_cli import agent_env, invoke

pytestmark = pytest.mark.e2e

FULL = {"method": "POST", "path": "^/v1/servers$", "code": "resource_unavailable"}


@pytest.fixture
def full_location(cloud_endpoint):
    """The next N server creates are refused for lack of capacity (as Hetzner answers for a full location)."""
    def refuse(times: int) -> None:
        cloud_endpoint.admin("PUT", "/_admin/faults", [{**FULL, "times": times}])
    yield refuse
    cloud_endpoint.admin("DELETE", "/_admin/faults")


def test_an_agent_and_a_job_land_in_the_next_location(fleet, operator, client, full_location, tmp_path):
    _, sk = operator
    events = tmp_path / "events.jsonl"
    full_location(1)
    made = invoke("provision", "--agent-id", "failover-1", "--location", "fsn1,nbg1,hel1", "--no-tailscale",
                  "--json", "--events", str(events), env_extra=agent_env(sk))
    try:
        assert made.returncode == 0, made.stderr[-3000:]
        [agent] = json.loads(made.stdout)["agents"]
        server = client.servers.get_by_id(agent["server_id"])
        assert server.location.name == "nbg1" and server.labels["location"] == "nbg1"
        said = [json.loads(line) for line in events.read_text().splitlines()]
        assert any(e["event"] == "location unavailable" and e["agent"] == "failover-1"
                   and e["detail"] == "fsn1 has no capacity: trying nbg1" for e in said), said
        assert "fsn1 has no capacity: trying nbg1" in made.stderr
    finally:
        assert invoke("deprovision", "--agent-id", "failover-1").returncode == 0

    full_location(2)
    job = invoke("run", "--job-id", "failover-job", "--location", "fsn1,nbg1,hel1", "--json", "--", "true",
                 env_extra=agent_env(sk))
    assert job.returncode == 0, job.stderr[-3000:]
    [ran] = json.loads(job.stdout)["jobs"]
    assert ran["location"] == "hel1" and ran["exit_code"] == 0, ran
    assert "nbg1 has no capacity for the job server: trying hel1" in job.stderr


def test_every_location_full_fails_with_nothing_left(fleet, operator, full_location):
    _, sk = operator
    full_location(2)
    made = invoke("provision", "--agent-id", "failover-2", "--location", "fsn1,nbg1", "--no-tailscale", "--json",
                  env_extra=agent_env(sk))
    assert made.returncode == 1, made.stderr[-3000:]
    [agent] = json.loads(made.stdout)["agents"]
    assert agent["status"] == "failed" and "try another location with --location" in agent["error"], agent
    assert "Traceback" not in made.stderr
    unknown = invoke("provision", "--agent-id", "failover-3", "--location", "fsn1,mars1", env_extra=agent_env(sk))
    assert unknown.returncode == 1 and "location 'mars1' does not exist" in unknown.stderr, unknown.stderr


def test_a_builder_lands_in_the_next_location(fleet, cloud_endpoint, tmp_path):
    """The builder's failover, without a whole build: its create action then fails on purpose (nothing is left)."""
    events = tmp_path / "events.jsonl"
    cloud_endpoint.admin("PUT", "/_admin/faults", [{**FULL, "times": 1}, {"action": "create_server", "times": 1}])
    try:
        built = invoke("build-snapshot", "--force", "--location", "fsn1,nbg1", "--events", str(events))
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    assert built.returncode == 1, built.stderr[-3000:]
    assert "fsn1 has no capacity for the builder server: trying nbg1" in built.stderr
    assert "step 'boot' failed" in built.stderr and "Traceback" not in built.stderr
    said = [json.loads(line) for line in events.read_text().splitlines()]
    assert any(e["event"] == "location unavailable" and e["detail"] == "fsn1 has no capacity: trying nbg1"
               for e in said), said
