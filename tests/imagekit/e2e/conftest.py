"""One real snapshot build for the whole session, shared by every end-to-end module of imagekit
(a build takes a minute or two), and the operator's own SSH key. The session's snapshot has agent code and a
container image baked in (test_baked.py), so that proving them costs no build of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from operator_cli import PLANTED_SECRET, agent_env, invoke

from imagekit.host.keys import new_ed25519
from localcloud.host import dockerarchive

BAKED_AGENT = Path(__file__).parent / "baked_agent"  # with a package-lock.json: the build runs `npm ci`
BAKED_IMAGE = "imagekit-test/busybox:1"


@pytest.fixture(scope="session")
def bake_args(tmp_path_factory) -> list[str]:
    """What the session's build bakes in: the test agent and a `docker save` archive of BAKED_IMAGE (Debian's
    busybox-static, written without Docker). A build of the same inputs passes the same."""
    where = tmp_path_factory.mktemp("baked")
    archive = dockerarchive.write(where / "busybox.tar", BAKED_IMAGE, dockerarchive.busybox_binary(where / "deb"))
    return ["--agent-bundle", str(BAKED_AGENT), "--image", str(archive)]


@pytest.fixture(scope="session")
def built(client, cloud_endpoint, tmp_path_factory, bake_args):
    """The build's JSON result (plus ``events_file``, its live events) and its progress; the snapshot is deleted
    at the end of the session, so it is built (--force), never an operator's snapshot of the same inputs reused."""
    github_output = tmp_path_factory.mktemp("gha") / "output"
    events = github_output.parent / "events.jsonl"
    proc = invoke("build-snapshot", "--json", "--force", "--events", str(events), *bake_args,
                  env_extra={"GITHUB_OUTPUT": str(github_output), "IMAGEKIT_TEST_SECRET": PLANTED_SECRET})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # exactly one JSON object on stdout; progress went to stderr
    assert result["reused"] is False
    assert github_output.read_text() == f"snapshot_id={result['snapshot_id']}\n"
    result["events_file"] = str(events)
    yield result, proc.stderr
    client.images.get_by_id(result["snapshot_id"]).delete()


@pytest.fixture(scope="session")
def snapshot(built) -> int:
    return built[0]["snapshot_id"]


@pytest.fixture(scope="session")
def operator(client, cloud_endpoint):
    """The operator's own key (HETZNER_SSH_KEY_ID): the one way into provisioned hosts."""
    key = new_ed25519("operator")
    sk = client.ssh_keys.create(name=f"operator-{key.public_openssh.split()[1][-12:]}", public_key=key.public_openssh)
    yield key, sk
    sk.delete()


@pytest.fixture(scope="session")
def profile_firewall(client, cloud_endpoint):
    """The agent profile's firewall, made up front as provisioning would make it (so that tests which compare
    the cloud before and after see no change), and deleted at the end unless it existed before the session."""
    from imagekit import profiles
    from imagekit.steps.firewall import profile_firewall

    firewall, made = profile_firewall(client, profiles.load("agent"))
    yield firewall
    if made:
        firewall.delete()


@pytest.fixture
def fleet(snapshot, operator, profile_firewall, cloud_unchanged):
    """What a provisioning test needs: the session's snapshot, the operator's key, the profile's firewall;
    the cloud as the test found it at its end."""
    return cloud_unchanged


@pytest.fixture
def key_env(operator, tmp_path):
    """The operator's environment with the private half of their key (status, update, roll, the pool)."""
    key, sk = operator
    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    return agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file))
