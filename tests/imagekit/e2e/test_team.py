"""Safe for a team in one project (issue 24), end to end on the local cloud, each operator a process of its own:
- pinned host keys: a host whose SSH host key was swapped after boot is refused by `status` and by
  `update --secrets-file` (naming the server and both fingerprints), and the secret never reaches it: the host
  logs no login at all; a server without a `host-key` label is refused too, and `roll --trust-unpinned` gives it
  a pinned key;
- gc spares live work: gc run again and again in the middle of another process's build, provision and job (whose
  leases would have ended long before, had their runs not renewed them; their servers' boots held up 45 s by the
  local cloud's fault injection, so that all three are mid-way for as long as the gc runs take) leaves them to
  finish;
- no delete from a stale listing: a claim made between `pool drain`'s listing and its deletes keeps the agent;
- cancelled means gone: a job whose terminal closed (SIGHUP), and a job killed outright and then "cancelled" by the
  run-job workflow's own cancel step (its command line, read from the YAML), leave nothing within 30 s.
The rules without machines: tests/imagekit/unit/test_host_keys.py, test_leases.py, test_workflows.py."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from operator_cli import ROOT, environment, invoke, output_so_far, start
from test_update import on_host

from imagekit.host import hostkey, ssh
from tests.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a build of its own, a fallback install, a pool: minutes

SECRET = "team-secret-3b9e71"


def servers_of(client, run: str) -> list:
    return [s for s in client.servers.get_all(label_selector=f"managed-by=imagekit,run={run}")
            if s.status != "deleting"]


def keys_of(client, run: str) -> list:
    return client.ssh_keys.get_all(label_selector=f"managed-by=imagekit,run={run}")


def unpinned_login(ip: str, key, command: str) -> str:
    """The test's own look at a host whatever key it shows (the test knows what it did to the host)."""
    conn = ssh.connect(ip, key, pin=None)
    try:
        return ssh.run(conn, command)[1].strip()
    finally:
        conn.close()


# --- 1. pinned host keys ---------------------------------------------------------------------------------------


def test_a_host_showing_another_key_gets_nothing_and_an_unpinned_one_is_pinned_by_a_roll(fleet, operator, key_env,
                                                                                       tmp_path):
    client = fleet
    key, _ = operator
    made = invoke("provision", "--agent-id", "team-pin", "--no-tailscale", "--json", env_extra=key_env)
    assert made.returncode == 0, made.stderr[-3000:]
    [agent] = json.loads(made.stdout)["agents"]
    ip, server = agent["ipv4"], client.servers.get_by_id(agent["server_id"])
    try:
        pinned = server.labels["host-key"]
        assert on_host(ip, key, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1] and pinned  # pinned login works
        # Someone else's key now answers on the agent's address (here: the host's key replaced; sshd reads its
        # host keys for every connection).
        mark = f"imagekit-test-mark-{time.time_ns()}"  # in the journal: what follows happened after the swap
        swapped = on_host(ip, key, "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f "
                                   "/etc/ssh/ssh_host_ed25519_key && cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub "
                                   f"&& logger {mark}")
        impostor = hostkey.fingerprint(base64.b64decode(swapped))
        named = [f"server {server.id} (team-pin)", hostkey.openssh_form(pinned), hostkey.openssh_form(impostor)]

        checked = invoke("status", "--agent-id", "team-pin", "--json", env_extra=key_env)
        assert checked.returncode == 1, checked.stderr[-2000:]
        [row] = json.loads(checked.stdout)["agents"]
        assert row["healthy"] is False and row["ssh"] is False and row["service"] is None
        assert all(part in row["problems"][0] for part in named), row["problems"]

        secrets_file = tmp_path / "secrets.env"
        secrets_file.write_text(f"AGENT_TOKEN={SECRET}\n")
        refused = invoke("update", "--agent-id", "team-pin", "--secrets-file", str(secrets_file), "--json",
                         env_extra=key_env)
        assert refused.returncode == 1, refused.stderr[-2000:]
        [row] = json.loads(refused.stdout)["agents"]
        assert row["status"] == "failed" and all(part in row["error"] for part in named), row["error"]
        assert "nothing was sent" in row["error"] and SECRET not in refused.stdout + refused.stderr
        # Nothing reached the host: the secret is nowhere on it, and no login happened but the test's own below
        # (status and update ended their connections at the host key, before any key of ours was offered).
        seen = unpinned_login(ip, key, f"grep -rls {SECRET} /opt /etc /run /root /var/log /tmp; "
                                       "journalctl -b -o cat").splitlines()
        after = seen[max(i for i, line in enumerate(seen) if mark in line):]
        assert not [line for line in seen if SECRET in line], seen[-50:]  # no file, no journal line
        assert len([line for line in after if "Connection from" in line]) >= 3  # status, update, this look
        assert len([line for line in after if "Accepted publickey" in line]) == 1, after  # this look only

        # A server without the label (made before imagekit pinned host keys) is refused with the way out ...
        client.servers.update(server, labels={k: v for k, v in server.labels.items() if k != "host-key"})
        unpinned = invoke("update", "--agent-id", "team-pin", "--secrets-file", str(secrets_file), "--json",
                          env_extra=key_env)
        [row] = json.loads(unpinned.stdout)["agents"]
        assert unpinned.returncode == 1 and "has no host-key label" in row["error"]
        assert "invoke roll --trust-unpinned --agent-id team-pin" in row["error"]
        # ... which is a roll that trusts its current key once: the replacement is pinned, and checks out.
        rolled = invoke("roll", "--agent-id", "team-pin", "--trust-unpinned", "--json", env_extra=key_env)
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        [row] = json.loads(rolled.stdout)["agents"]
        assert row["status"] == "rolled" and row["new_server_id"] != server.id
        new = client.servers.get_by_id(row["new_server_id"])
        assert new.name == "team-pin" and new.labels["host-key"] not in (pinned, impostor)
        healthy = invoke("status", "--agent-id", "team-pin", "--json", env_extra=key_env)
        assert healthy.returncode == 0 and json.loads(healthy.stdout)["agents"][0]["ssh"] is True, healthy.stderr
    finally:
        assert invoke("deprovision", "--agent-id", "team-pin").returncode == 0


# --- 2. gc spares live work ----------------------------------------------------------------------------------


def test_gc_in_the_middle_of_a_build_a_provision_and_a_job_leaves_them_to_finish(fleet, operator, key_env, snapshot,
                                                                                 cloud_endpoint):
    client = fleet
    short = {"IMAGEKIT_LEASE_INTERVAL": "3"}  # the runs renew every 3 s: a lease they stop renewing ends in 15 s
    # Every server's boot held up 45 s: the three runs are mid-way (their leases renewed only by them) for longer
    # than the three gc runs below take, however fast this machine builds, provisions and runs a job.
    cloud_endpoint.admin("PUT", "/_admin/faults", [{"action": "create_server", "delay": 45, "fail": False}])
    procs = {
        "team-build": start("build-snapshot", "--json", "--force", "--from", str(snapshot), "--run-id", "team-build",
                            "--name", "imagekit-team-{build_id}", env_extra=short),
        "team-prov": start("provision", "--agent-id", "team-lease", "--mode", "snapshot", "--no-pool",
                           "--no-tailscale", "--run-id", "team-prov", "--json", env_extra={**key_env, **short}),
        "team-job": start("run", "--job-id", "team-job", "--run-id", "team-job", "--json", "--", "sh", "-c",
                          "sleep 5; echo done", env_extra=short),
    }
    built = None
    try:
        made = {run: wait_for(lambda run=run: servers_of(client, run), 300, 0.5, f"{run}'s server")[0]
                for run in procs}
        assert all("lease-until" in s.labels for s in made.values())
        # Well past the leases their creates set: only their runs' renewals keep them.
        time.sleep(max(0.0, max(int(s.labels["lease-until"]) for s in made.values()) + 5 - time.time()))
        swept = []
        for _ in range(3):
            gc = invoke("gc", "--json")
            assert gc.returncode == 0, gc.stderr[-2000:]
            result = json.loads(gc.stdout)
            swept += [i for kind in ("servers", "agent_servers", "job_servers", "other_servers") for i in result[kind]]
            swept += result["ssh_keys"]
            time.sleep(4)
        ours = {s.id for s in made.values()} | {k.id for run in procs for k in keys_of(client, run)}
        assert not set(swept) & ours, swept
        outcomes = {run: p.communicate(timeout=1800) for run, p in procs.items()}
        for run, p in procs.items():
            assert p.returncode == 0, f"{run}: {outcomes[run][1][-3000:]}"
        built = json.loads(outcomes["team-build"][0])["snapshot_id"]
        [agent] = json.loads(outcomes["team-prov"][0])["agents"]
        assert agent["status"] == "ready" and agent["mode"] == "snapshot"
        [job] = json.loads(outcomes["team-job"][0])["jobs"]
        assert job["exit_code"] == 0 and "done" in outcomes["team-job"][1]
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.communicate(timeout=300)
        invoke("deprovision", "--agent-id", "team-lease")
        if built is not None:
            client.images.get_by_id(built).delete()


# --- 3. no delete from a stale listing ----------------------------------------------------------------------------


def test_a_claim_between_drains_listing_and_its_deletes_keeps_the_claimed_agent(fleet, key_env):
    client = fleet
    try:
        filled = invoke("pool", "fill", "--size", "2", "--json", env_extra=key_env)
        assert filled.returncode == 0, filled.stderr[-3000:]
        drain = start("pool", "drain", "--json", env_extra=key_env)
        try:
            line = ""
            while "host(s) of agent listed" not in line:  # drain has its listing: stop it right there
                line = drain.stderr.readline()
                assert line, "drain ended before it listed the pool"
            os.killpg(drain.pid, signal.SIGSTOP)
            claimed = invoke("provision", "--agent-id", "team-claim", "--no-tailscale", "--json", env_extra=key_env)
        finally:
            os.killpg(drain.pid, signal.SIGCONT)
        out, err = drain.communicate(timeout=300)
        assert claimed.returncode == 0, claimed.stderr[-3000:]
        [agent] = json.loads(claimed.stdout)["agents"]
        assert agent["mode"] == "pool" and agent["status"] == "ready"
        assert drain.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert agent["server_id"] not in result["deleted"] and len(result["deleted"]) == 1, err
        assert agent["server_id"] in [left["server_id"] for left in result["left"]], err
        server = client.servers.get_by_id(agent["server_id"])
        assert server.status == "running" and server.name == "team-claim" and server.labels["role"] == "agent"
        assert not [s for s in client.servers.get_all(label_selector="managed-by=imagekit,role=pool")
                    if s.status != "deleting"]
    finally:
        invoke("deprovision", "--agent-id", "team-claim")
        invoke("pool", "drain", env_extra=key_env)


# --- 4. cancelled means gone ---------------------------------------------------------------------------------------


def started(proc: subprocess.Popen, word: str = "started") -> bool:
    """Whether the background job's command has printed ``word``."""
    return word in output_so_far(proc)


def gone_within(client, run: str, seconds: float) -> float:
    """Seconds until nothing of ``run`` is left (servers, keys); an AssertionError after ``seconds``."""
    t0 = time.monotonic()
    wait_for(lambda: not servers_of(client, run) and not keys_of(client, run), seconds, 0.5, f"{run} to be gone")
    return time.monotonic() - t0


def test_a_job_whose_terminal_closed_leaves_nothing_within_30_s(fleet):
    client = fleet
    proc = start("run", "--job-id", "team-hup", "--run-id", "team-hup", "--", "sh", "-c", "echo started; sleep 300")
    try:
        wait_for(lambda: started(proc), 300, 0.2, "the job's command to start")
    finally:
        os.killpg(proc.pid, signal.SIGHUP)
    assert gone_within(client, "team-hup", 30) < 30
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, err[-3000:]


def cancel_step(workflow: Path) -> tuple[str, str]:
    """(the run-job workflow's cancel step's script, the RUN_ID it reads, as Actions renders it for run 4242,
    attempt 1): the command line the workflow runs when a run is cancelled."""
    [job] = yaml.safe_load(workflow.read_text())["jobs"].values()
    [step] = [s for s in job["steps"] if "cancelled()" in str(s.get("if", ""))]
    run_id = re.sub(r"\$\{\{\s*github\.run_attempt\s*\}\}", "1",
                    re.sub(r"\$\{\{\s*github\.run_id\s*\}\}", "4242", job["env"]["RUN_ID"]))
    return step["run"], run_id


def test_a_job_cancelled_by_the_workflows_cancel_step_leaves_nothing_within_30_s(fleet):
    client = fleet
    script, run_id = cancel_step(ROOT / ".github" / "workflows" / "run-job.yml")
    assert run_id == "gh-4242-1" and "gc --run" in script
    proc = start("run", "--job-id", run_id, "--run-id", run_id, "--", "sh", "-c", "echo started; sleep 300")
    try:
        wait_for(lambda: started(proc), 300, 0.2, "the job's command to start")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner gave up on it: no cleanup of its own ran
        proc.communicate(timeout=30)
    assert servers_of(client, run_id) and keys_of(client, run_id)  # its host still runs the command
    t0 = time.monotonic()
    step = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env=environment({"RUN_ID": run_id}))
    assert step.returncode == 0, step.stderr[-3000:]
    gone_within(client, run_id, max(1.0, 30 - (time.monotonic() - t0)))
    assert time.monotonic() - t0 < 30
    assert "it belongs to run gh-4242-1" in step.stderr
