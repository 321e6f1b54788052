"""`invoke run` end to end on the local cloud: one-shot jobs on fresh hosts from the session's snapshot.
Each test runs the job bundle (job_bundle/job.sh, whose part depends on $JOB_ID) and ends with the cloud
as it found it: every job's server and key are gone whatever the way out (success, failing command,
timeout, Ctrl-C, SIGTERM; after SIGKILL, gc past the job's deadline). The outputs' rules and the
secrets file's parsing are unit tested in tests/imagekit/unit/test_job_logic.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from operator_cli import PLANTED_SECRET, invoke, output_so_far, start

from imagekit import tailnet
from imagekit.cloud import leases
from imagekit.host import hostkey, ssh
from imagekit.host.keys import load_ed25519
from imagekit.target import Target
from localcloud import client as localcloud
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e
BUNDLE = Path(__file__).parent / "job_bundle"
SECRET_VALUE = 'hunter2 "quoted" $HOME'


@pytest.fixture
def workdir(tmp_path) -> Path:
    """The bundle as an operator's directory (git keeps only the x bit: the modes are set here)."""
    wd = tmp_path / "work"
    shutil.copytree(BUNDLE, wd)
    (wd / "data" / "tool.sh").chmod(0o750)
    return wd


def standin() -> tailnet.Tailnet:
    ep = localcloud.current()
    return tailnet.Tailnet(tailnet.credentials(Target(ep.endpoint, ep.token, local=True)))


def job_servers(client, job: str | None = None) -> list:
    selector = "managed-by=imagekit,role=job" + (f",job-id={job}" if job else "")
    return [s for s in client.servers.get_all(label_selector=selector) if s.status != "deleting"]


def run(*args: str, env: dict | None = None):
    proc = invoke("run", "--json", *args, env_extra=env)
    return proc, json.loads(proc.stdout) if proc.stdout.strip() else None


def test_two_jobs_at_once_run_sandboxed_and_bring_their_outputs_back(fleet, snapshot, workdir, tmp_path):
    out = tmp_path / "outputs"
    proc, result = run("--job-id", "ok", "--count", "2", "--workdir", str(workdir), "--outputs", str(out),
                       "--tailscale", "--", "./job.sh")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result["exit_code"] == 0 and [j["job_id"] for j in result["jobs"]] == ["ok-1", "ok-2"]
    for job in result["jobs"]:
        jid = job["job_id"]
        assert job["error"] is None and job["exit_code"] == 0 and job["image"] == snapshot
        assert job["server_type"] == "cx23" and job["location"] == job["cost"]["location"] != ""
        assert job["cost"]["billed_hours"] == 1 and job["cost"]["gross"] > 0
        assert all(job["seconds"][k] > 0 for k in ("create_to_ready", "run", "teardown"))
        # its output streamed live, prefixed (two jobs, and --json keeps stdout for the JSON)
        checks = {line.split("check: ", 1)[1] for line in proc.stderr.splitlines()
                  if line.startswith(f"[{jid}] check:")}
        assert f"user=openclaw dir=/opt/openclaw/jobs/{jid} job={jid}" in checks
        assert "data=input data mode=750" in checks  # the work directory, modes kept
        assert {"nonewprivs=1", "read-only-outside", "pid1-hidden"} <= checks  # the agent's sandbox
        assert f"[{jid}] to stderr" in proc.stderr
        got = out / jid
        assert (got / "result.txt").read_text() == f"result of {jid}\n"
        assert (got / "nested" / "tool.out").read_text() == "tool ran\n"
        assert os.readlink(got / "latest") == "result.txt"  # a link inside outputs/ stays a link
    assert sorted(p.name for p in out.iterdir()) == ["ok-1", "ok-2"]  # nothing staged is left
    assert job_servers(fleet) == []
    # --tailscale: each host was enrolled (a device of its own), and its device went with it
    enrolled = [d for j in result["jobs"] for d in j["tailscale_devices"]]
    assert len(enrolled) == 2 and not {d["id"] for d in standin().devices()} & set(enrolled)


def test_a_failing_command_gives_its_exit_code_and_the_secrets_stay_off_the_record(fleet, workdir, tmp_path):
    """--keep-on-failure keeps the failed job's host, so the test can look for the secret where it must not be."""
    secrets_file = tmp_path / "job.env"
    secrets_file.write_text(f"# the job's credentials\nexport JOB_SECRET='{SECRET_VALUE}'\nOTHER={PLANTED_SECRET}\n")
    state = tmp_path / "state"
    proc, result = run("--job-id", "fail-1", "--workdir", str(workdir), "--secrets-file", str(secrets_file),
                       "--keep-on-failure", "--", "./job.sh", env={"XDG_STATE_HOME": str(state)})
    [job] = result["jobs"]
    try:
        assert proc.returncode == 7 and result["exit_code"] == 7 and job["exit_code"] == 7, proc.stderr[-3000:]
        assert job["error"] is None and job["kept"] is True
        assert "[fail-1] check: secret-in-environment" in proc.stderr
        assert "job fail-1: exit code 7" in proc.stderr and "(server kept)" in proc.stderr
        for text in (proc.stdout, proc.stderr):
            assert PLANTED_SECRET not in text and "hunter2" not in text
        [server] = job_servers(fleet, "fail-1")
        key = load_ed25519(str(state / "imagekit" / "keys" / "imagekit-job-fail-1"))
        conn = ssh.connect(server.public_net.ipv4.ip, key, pin=hostkey.pin(server))
        try:
            code, out, _ = ssh.run(conn, "stat -c '%U %a' /run/imagekit-jobs/fail-1.env; "
                                         f"grep -c {PLANTED_SECRET} /run/imagekit-jobs/fail-1.env")
            assert out.split() == ["root", "600", "1"]  # root only; systemd read it for the command
            code, out, _ = ssh.run(conn, f"grep -rl {PLANTED_SECRET} /var/log /var/lib/cloud /opt/openclaw /etc /tmp "
                                         f"/home /root 2>/dev/null; journalctl -b --no-pager | grep -c {PLANTED_SECRET}"
                                         f"; cloud-init query userdata 2>/dev/null | grep -c {PLANTED_SECRET}")
            assert out.split() == ["0", "0"], out  # no file, no journal line, no user data
        finally:
            conn.close()
    finally:
        for server in job_servers(fleet, "fail-1"):
            server.delete()
        for k in fleet.ssh_keys.get_all(label_selector="managed-by=imagekit,role=job,job-id=fail-1"):
            k.delete()


def test_the_timeout_stops_the_command_with_124(fleet, workdir):
    proc, result = run("--job-id", "slow-timeout", "--workdir", str(workdir), "--timeout", "3", "--", "./job.sh")
    [job] = result["jobs"]
    assert proc.returncode == 124 and job["exit_code"] == 124 and job["timed_out"] is True, proc.stderr[-3000:]
    assert "[slow-timeout] check: started" in proc.stderr and "job slow-timeout: timed out" in proc.stderr
    assert 3 <= job["seconds"]["run"] < 60
    assert job_servers(fleet) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 130)], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_deletes_its_host(fleet, workdir, sig, code):
    job = f"slow-{sig.name.lower()}"
    proc = start("run", "--job-id", job, "--workdir", str(workdir), "--", "./job.sh")
    try:
        wait_for(lambda: job_servers(fleet, job), 120, 0.2, "the job's server")
        wait_for(lambda: "check: started" in output_so_far(proc), 120, 0.2, "the command to start")
    finally:
        os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-3000:]
    assert "every job is deleting its server" in err or "interrupted" in err
    assert job_servers(fleet) == []


def test_gc_sweeps_a_killed_runs_job_once_its_lease_ends(fleet, workdir):
    job = "slow-killed"
    short = {"IMAGEKIT_LEASE_INTERVAL": "2"}  # the run renews every 2 s, its lease reaching 10 s ahead
    proc = start("run", "--job-id", job, "--workdir", str(workdir), "--timeout", "5", "--max-output-mb", "1",
                 "--", "./job.sh", env_extra=short)
    try:
        wait_for(lambda: "check: started" in output_so_far(proc), 120, 0.2, "the command to start")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    [server] = job_servers(fleet, job)
    early = invoke("gc", "--role", "job", "--json")
    assert early.returncode == 0 and server.id not in json.loads(early.stdout)["job_servers"], early.stderr
    keys = fleet.ssh_keys.get_all(label_selector=f"managed-by=imagekit,role=job,job-id={job}")
    ends = max(leases.until(r) for r in [fleet.servers.get_by_id(server.id), *keys])
    time.sleep(max(0.0, ends + 1 - time.time()))
    gc = invoke("gc", "--role", "job", "--json")
    assert gc.returncode == 0, gc.stderr[-2000:]
    swept = json.loads(gc.stdout)
    assert swept["job_servers"] == [server.id] and len(swept["ssh_keys"]) == 1
    assert job_servers(fleet) == []


def test_hostile_outputs_are_refused_and_nothing_is_written(fleet, workdir, tmp_path):
    """Three jobs at once, each leaving outputs that break a rule: a link to /etc, a link climbing out with
    `..`, more than --max-output-mb. Each fails with the rule named; --outputs stays empty."""
    out = tmp_path / "outputs"
    proc, result = run("--job-id", "evil-link,evil-dotdot,evil-big", "--workdir", str(workdir), "--outputs", str(out),
                       "--max-output-mb", "1", "--", "./job.sh")
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = {j["job_id"]: j["error"] for j in result["jobs"]}
    assert "outputs/etc links outside outputs/ (/etc)" in errors["evil-link"]
    assert "outputs/sub/up links outside outputs/ (../../..)" in errors["evil-dotdot"]
    assert "outputs/ is over 1 MiB" in errors["evil-big"]
    assert all(j["exit_code"] is None or j["exit_code"] == 0 for j in result["jobs"])
    assert list(out.iterdir()) == []  # no partial outputs, no staging directories
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs", "work"]  # nothing beside it
    assert job_servers(fleet) == []


def test_bad_input_fails_before_anything_exists(fleet, workdir, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    (workdir / "escape").symlink_to(outside)
    for args, message in [
        ((), "no command: put it after `--`"),
        (("--job-id", "bad id", "--", "true"), "job id 'bad id' cannot become a hostname"),
        (("--job-id", "x", "--workdir", str(workdir), "--", "true"), "escape links outside the directory"),
        (("--job-id", "x", "--timeout", "0", "--", "true"), "--timeout 0: give a number of seconds above 0"),
        (("--job-id", "x", "--secrets-file", str(tmp_path / "none.env"), "--", "true"), "cannot read --secrets-file"),
    ]:
        proc = invoke("run", *(args or ("--job-id", "x")), env_extra={})
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr[-1500:])
    assert job_servers(fleet) == []
