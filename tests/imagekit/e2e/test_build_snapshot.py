"""build-snapshot end to end on the local cloud: a real build, verified, nothing left behind.
Failures at every step are in test_failures.py."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from operator_cli import PLANTED_SECRET, invoke

from localcloud.paths import layout

pytestmark = pytest.mark.e2e


def test_build_leaves_only_a_labelled_snapshot(built, client):
    result, progress = built
    [snap] = [i for i in client.images.get_all(type="snapshot") if i.id == result["snapshot_id"]]
    build_id = snap.labels["build-id"]
    assert snap.labels["managed-by"] == "imagekit" and snap.labels["profile"] == "agent"
    assert {"build-id", "source-revision", "base-image", "version"} <= set(snap.labels)
    assert snap.labels["inputs-hash"] == result["inputs_hash"] and len(result["inputs_hash"]) == 40
    assert not client.servers.get_all(label_selector=f"build-id={build_id}")  # the builder is gone
    assert not client.ssh_keys.get_all(label_selector=f"build-id={build_id}")  # and its key
    for step in ("temporary SSH key", "builder server", "ssh", "cloud-init", "playbooks", "checks (testinfra)",
                 "clean image", "shut down", "snapshot"):
        assert step in result["durations"] and f"==> {step}" in progress


def test_the_build_streams_its_events(built):
    """--events: one JSON object per line as things happen, in time order, framed by the run's start and its
    outcome, every step started and finished."""
    result, _ = built
    rows = [json.loads(line) for line in open(result["events_file"])]
    assert rows[0]["event"] == "run started" and rows[-1]["event"] == "run finished"
    assert rows[-1]["detail"] == f"succeeded: snapshot {result['snapshot_id']}"
    assert {r["run_id"] for r in rows} == {result["build_id"]}
    assert [r["seconds"] for r in rows] == sorted(r["seconds"] for r in rows)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    finished = [r["step"] for r in rows if r["event"] == "step finished"]
    assert finished == list(result["durations"]) == [r["step"] for r in rows if r["event"] == "step started"]
    assert set(rows[0]) == {"time", "run_id", "agent", "step", "event", "seconds", "detail"}


def test_snapshot_holds_no_secret(built, cloud_endpoint):
    result, _ = built
    disk = layout().snapshots / str(result["snapshot_id"])
    # b3BlbnNzaC1rZXktdjE = base64("openssh-key-v1"): the body of any OpenSSH private key.
    needles = [cloud_endpoint.token, PLANTED_SECRET, "b3BlbnNzaC1rZXktdjE"]
    # Package documentation is excluded: cloud-init ships an example private key in its docs.
    patterns = sum((["-e", n] for n in needles), [])
    proc = subprocess.run(["grep", "-r", "-l", "-F", "--exclude-dir=doc", *patterns, str(disk)],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout == "", f"secrets found in: {proc.stdout[:2000]}"
    assert proc.returncode == 1  # grep: 1 = no match (2 would be an error)
    assert (disk / "etc/machine-id").read_text() == ""
    assert not (disk / "root/.ssh/authorized_keys").exists()  # no key of the build's stays
    assert not list((disk / "etc/ssh").glob("ssh_host_*"))
    assert not (disk / "var/lib/cloud/instance").exists()


def test_verify_boots_a_clone_and_cleans_up(built, cloud_unchanged):
    result, _ = built
    proc = invoke("verify", "--snapshot", str(result["snapshot_id"]), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verified" in proc.stderr


def test_verify_latest_picks_the_session_snapshot(built, cloud_unchanged):
    result, _ = built
    proc = invoke("verify", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"verifying snapshot {result['snapshot_id']} " in proc.stderr


def test_second_playbook_run_changes_nothing(built, client, cloud_endpoint, cloud_unchanged):
    """Idempotence on a real host: a server from the snapshot, the playbooks again, zero changes."""
    from hcloud.images import Image
    from hcloud.server_types import ServerType

    from imagekit.host import playbook, ssh
    from imagekit.host.keys import new_ed25519
    from imagekit.steps.install import playbook_variables

    result, _ = built
    key = new_ed25519()
    sk = client.ssh_keys.create(name="idem", public_key=key.public_openssh)
    resp = client.servers.create(name="idem", server_type=ServerType(name="cx23"),
                                 image=Image(id=result["snapshot_id"]), ssh_keys=[sk])
    try:
        resp.action.wait_until_finished(120)
        ip = client.servers.get_by_id(resp.server.id).public_net.ipv4.ip
        ssh.wait_for_ssh(ip, key, pin=None, deadline=time.monotonic() + 120).close()  # made without imagekit
        labels = client.images.get_by_id(result["snapshot_id"]).labels
        book = playbook.load("agent", playbook_variables("agent", "debian-12", "local", True, labels["build-id"]))
        with ssh.fabric_connection(ip, key, pin=None) as conn:
            conn.run("cloud-init status --wait", hide=True, in_stream=False)
            results = playbook.run(book, playbook.fabric_runner(conn))
        assert [r.name for r in results if r.changed] == []
        # The clone's own disk holds no secret of the build either.
        clone_disk = layout().disks / str(resp.server.id)
        proc = subprocess.run(["grep", "-r", "-l", "-F", "--exclude-dir=doc", "--exclude-dir=proc", "-e",
                               cloud_endpoint.token, "-e", PLANTED_SECRET, str(clone_disk)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout[:2000]
    finally:
        client.servers.delete(resp.server).wait_until_finished(120)
        sk.delete()
