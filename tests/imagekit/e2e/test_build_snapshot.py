"""build-snapshot end to end on the local cloud: a real build, verified, nothing left behind.
Failures at every step are in test_failures.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localcloud.paths import layout

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]
PLANTED_SECRET = "imagekit-planted-secret-7f3a9c"  # exported to the build; must never reach the image


def invoke(*args: str, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("HCLOUD_TOKEN", "HETZNER_API_TOKEN")}
    env["IMAGEKIT_TEST_SECRET"] = PLANTED_SECRET
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def only_snapshots_left(client) -> list:
    assert client.servers.get_all() == []
    assert client.ssh_keys.get_all() == []
    return client.images.get_all(type="snapshot")


@pytest.fixture(scope="module")
def built(client, cloud_endpoint, tmp_path_factory):
    """One real build shared by the tests of this module (it takes a minute or two)."""
    github_output = tmp_path_factory.mktemp("gha") / "output"
    proc = invoke("build-snapshot", "--json", env_extra={"GITHUB_OUTPUT": str(github_output)})
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out)  # exactly one JSON object on stdout; progress went to stderr
    assert github_output.read_text() == f"snapshot_id={result['snapshot_id']}\n"
    yield result, err
    client.images.delete(client.images.get_by_id(result["snapshot_id"]))


def test_build_leaves_only_a_labelled_snapshot(built, client):
    result, progress = built
    snaps = only_snapshots_left(client)
    assert [s.id for s in snaps] == [result["snapshot_id"]]
    labels = snaps[0].labels
    assert labels["managed-by"] == "imagekit" and labels["profile"] == "agent"
    assert {"build-id", "source-revision", "base-image", "version"} <= set(labels)
    for step in ("check inputs", "builder server", "playbooks", "verify (testinfra)", "clean image", "snapshot"):
        assert step in result["durations"] and f"==> {step}" in progress


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
    assert not (disk / "root/.ssh/authorized_keys").exists()  # the build's key was the only one
    assert not list((disk / "etc/ssh").glob("ssh_host_*"))
    assert not (disk / "var/lib/cloud/instance").exists()


def test_verify_boots_a_clone_and_cleans_up(built, client):
    result, _ = built
    proc = invoke("verify", "--snapshot", str(result["snapshot_id"]))
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "verified" in err
    only_snapshots_left(client)


def test_second_playbook_run_changes_nothing(built, client, cloud_endpoint):
    """Idempotence on a real host: a server from the snapshot, the playbooks again, zero changes."""
    from hcloud.images import Image
    from hcloud.server_types import ServerType

    from imagekit import playbook, ssh
    from imagekit.keys import new_ed25519

    result, _ = built
    key = new_ed25519()
    sk = client.ssh_keys.create(name="idem", public_key=key.public_openssh)
    resp = client.servers.create(name="idem", server_type=ServerType(name="cx23"),
                                 image=Image(id=result["snapshot_id"]), ssh_keys=[sk])
    try:
        resp.action.wait_until_finished(120)
        ip = client.servers.get_by_id(resp.server.id).public_net.ipv4.ip
        ssh.wait_for_ssh(ip, key, deadline=time.monotonic() + 120).close()
        labels = client.images.get_by_id(result["snapshot_id"]).labels
        book = playbook.load("agent", {
            "os": "debian-12", "package_source": "local", "build_id": labels["build-id"], "built_at": "x",
            "source_revision": labels["source-revision"], "base_image": "debian-12", "profile": "agent",
            "standin_apt_source": "deb [trusted=yes] http://10.213.7.1:8931/apt ./"})
        with ssh.fabric_connection(ip, key) as conn:
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
