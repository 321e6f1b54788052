"""build-snapshot hands out the snapshot of the same inputs instead of baking it again. The session's
snapshot (built with --force, so it carries an inputs-hash label) is the one a build of the same inputs
reuses, creating nothing; changed playbooks, --force or a snapshot older than --max-age make it build.
Those builds are stopped at their first server create by an injected API fault, so this module bakes no
image of its own. The hash itself (stable across builds, changing with each input): unit/test_build_inputs.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from operator_cli import invoke
from test_failures import api_fault, first_step, playbooks_with

from localcloud import client as localcloud

pytestmark = pytest.mark.e2e
ONE_MORE_STEP = first_step("  - name: one more step\n    run: 'true'\n    creates: /etc/one-more-step\n")


def requests_since(cloud_endpoint, seq: int) -> list[dict]:
    """The API requests after the ``seq``-th (by number, so entries the bounded log drops cannot skew a count)."""
    return cloud_endpoint.admin("GET", f"/_admin/requests?since={seq}")["requests"]


def test_a_build_of_the_same_inputs_reuses_the_sessions_snapshot(snapshot, cloud_endpoint, cloud_unchanged, tmp_path,
                                                                 bake_args):
    client = cloud_unchanged
    github_output, events = tmp_path / "output", tmp_path / "events.jsonl"
    servers_before = {s.id for s in client.servers.get_all()}
    seq = localcloud.api_requests(cloud_endpoint)
    proc = invoke("build-snapshot", "--json", "--events", str(events), *bake_args,
                  env_extra={"GITHUB_OUTPUT": str(github_output)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["reused"] is True and result["snapshot_id"] == snapshot, result
    assert result["labels"]["inputs-hash"] == result["inputs_hash"] and result["labels"]["profile"] == "agent"
    assert result["durations"] == {} and result["seconds"] == 0 and 0 <= result["age_days"] < 1
    assert f"reusing snapshot {snapshot} " in proc.stderr and "--force builds anyway" in proc.stderr
    assert "==> " not in proc.stderr  # not one step ran
    assert github_output.read_text() == f"snapshot_id={snapshot}\n"
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert rows[-1]["event"] == "run finished" and rows[-1]["detail"] == f"succeeded: reused snapshot {snapshot}"
    writes = [f"{r['method']} {r['path']}" for r in requests_since(cloud_endpoint, seq) if r["method"] != "GET"]
    assert writes == []  # no POST /v1/servers, nor any key or image: the reuse only looked
    assert {s.id for s in client.servers.get_all()} == servers_before


@pytest.mark.parametrize("args, changed", [([], True), (["--force"], False), (["--max-age", "0.000001"], False),
                                           (["other-code"], False)],
                         ids=["changed-playbooks", "force", "older-than-max-age", "other-baked-code"])
def test_changed_inputs_force_or_an_old_snapshot_make_it_build(snapshot, cloud_endpoint, cloud_unchanged, tmp_path,
                                                              bake_args, args, changed):
    """Each gets as far as creating its builder, whose create fails (the fault), and leaves nothing."""
    env = playbooks_with(tmp_path, ONE_MORE_STEP) if changed else {}
    if args == ["other-code"]:  # the session's baked agent with one more file: another bundle-digest
        other = tmp_path / "agent"
        shutil.copytree(Path(bake_args[1]), other)
        (other / "README").write_text("one more file\n")
        args = ["--agent-bundle", str(other), *bake_args[2:]]
    else:
        args = [*args, *bake_args]
    cloud_endpoint.admin("PUT", "/_admin/faults", api_fault("POST", "^/v1/servers$")["faults"])
    try:
        proc = invoke("build-snapshot", "--json", *args, env_extra=env, timeout=600)
        [fault] = cloud_endpoint.admin("GET", "/_admin/faults")["faults"]
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "step 'builder server' failed" in proc.stderr and "server_error" in json.loads(proc.stdout)["error"], \
        proc.stderr[-3000:]
    assert "reusing snapshot" not in proc.stderr and fault["fired"] == 1


def test_max_age_0_is_refused(cloud_unchanged):
    proc = invoke("build-snapshot", "--max-age", "0", timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == ("error: build-snapshot: --max-age 0: give a number of days above 0 "
                                                    "(--force builds whatever exists)"), proc.stderr
