"""build-snapshot's and provision's input checks: every bad input is a clear error naming the fix,
found before anything is created. Run against the local cloud's API in this process (no root, no
machines, no real snapshot)."""

from __future__ import annotations

import pytest
from api_records import add_snapshot

from imagekit import agentid
from imagekit.build import BuildOptions, build_snapshot
from imagekit.errors import ImagekitError
from imagekit.provision import ProvisionOptions, provision
from imagekit.verify import verify_snapshot

API_URL = "https://agents.example.test/api"


def created(cloud) -> dict:
    return {kind: sorted(cloud.store[kind]) for kind in ("servers", "ssh_keys", "firewalls")}


def attempt(api, options: ProvisionOptions) -> str:
    before = created(api.cloud)
    with pytest.raises(ImagekitError) as info:
        provision(api.target, options, lambda line: None)
    assert created(api.cloud) == before  # nothing half-made
    return str(info.value)


@pytest.mark.parametrize("ids, count, message", [
    (["bad id!"], None, "cannot become a hostname"),
    (["-leading"], None, "cannot become a hostname"),
    (["x" * 64], None, "at most 63"),
    (["a,A"], None, "name the same server"),
    ([], 0, "--count 0"),
    ([], None, "no agent given"),
    (["a", "b"], 3, "one --agent-id with --count"),
])
def test_agent_ids(ids, count, message):
    with pytest.raises(agentid.InvalidAgentId, match=message):
        agentid.expand(ids, count)


@pytest.mark.parametrize("change, env, message", [
    ({"mode": "fast"}, {}, "--mode 'fast'"),
    ({"parallel": 0}, {}, "--parallel 0"),
    ({"timeout": -1}, {}, "--timeout -1"),
    ({"snapshot": "999999"}, {}, "snapshot '999999' not found"),
    ({"snapshot": "not-a-number"}, {}, "snapshot 'not-a-number' not found"),
    ({"server_type": "cx999"}, {}, "server type 'cx999' does not exist"),
    ({"location": "mars1"}, {}, "location 'mars1' does not exist"),
    ({"api_url": "not a url"}, {}, "not a plain http(s) URL"),
    ({"api_url": None}, {}, "AURA_API_URL"),
    ({"mode": "fallback", "wait": False}, {}, "cannot skip waiting"),
    ({"wait": False, "snapshot": "SNAPSHOT"}, {}, "--no-wait puts no key of imagekit's on the servers"),
    ({"wait": False, "snapshot": "SNAPSHOT", "secrets_file": "SECRETS"}, {}, "the secrets go to the hosts over SSH"),
    ({"secrets_file": "BAD_SECRETS"}, {}, "line 1: expected KEY=VALUE"),
    ({"secrets_file": "MISSING"}, {}, "cannot read --secrets-file"),
    ({"mode": "snapshot"}, {}, "no snapshot of profile 'agent'"),
    ({"mode": "fallback", "base_image": "plan9"}, {}, "base image 'plan9' (x86) does not exist"),
    ({"agent_bundle": "MISSING"}, {}, "neither a directory nor a .tar.gz"),
    ({"agent_bundle": "NO_INDEX"}, {}, "has no index.js"),
    ({}, {"HETZNER_SSH_KEY_ID": "424242"}, "HETZNER_SSH_KEY_ID '424242'"),
    ({}, {"SSH_PRIVATE_KEY_PATH": "/nonexistent/id_ed25519"}, "cannot read SSH_PRIVATE_KEY_PATH"),
    ({"tailscale": True}, {"TAILSCALE_OAUTH_CLIENT_ID": "kabc"}, "TAILSCALE_OAUTH_CLIENT_SECRET is not set"),
    ({"tailscale": True}, {"TAILSCALE_TAGS": "agents"}, "TAILSCALE_TAGS must be"),
    ({"tailscale": True}, {}, "Tailscale credentials are missing"),
])
def test_bad_provision_input_fails_before_creating_anything(api, clean_settings, tmp_path, change, env, message):
    bundles = {"MISSING": tmp_path / "nowhere", "NO_INDEX": tmp_path / "empty"}  # more: test_agent_bundles.py
    bundles["NO_INDEX"].mkdir()
    if change.get("agent_bundle"):
        change = {**change, "agent_bundle": bundles[change["agent_bundle"]]}
    (tmp_path / "secrets.env").write_text("TOKEN=s3cret\n")
    (tmp_path / "bad.env").write_text("no equals sign here\n")
    secret_files = {"SECRETS": tmp_path / "secrets.env", "BAD_SECRETS": tmp_path / "bad.env", "MISSING": tmp_path / "x"}
    if change.get("secrets_file"):
        change = {**change, "secrets_file": secret_files[change["secrets_file"]]}
    if change.get("snapshot") == "SNAPSHOT":
        change = {**change, "snapshot": str(add_snapshot(api.cloud, profile="by-id"))}
    for name, value in env.items():
        clean_settings.setenv(name, value)
    options = ProvisionOptions(agent_ids=["ok-1"], api_url=API_URL, tailscale=False, mode="auto")
    for key, value in change.items():
        setattr(options, key, value)
    assert message in attempt(api, options)


def test_snapshot_of_another_architecture_is_refused(api, clean_settings):
    snap = add_snapshot(api.cloud, architecture="x86", profile="by-id")
    message = attempt(api, ProvisionOptions(agent_ids=["ok-1"], api_url=API_URL, tailscale=False,
                                            snapshot=str(snap), server_type="cax11"))
    assert f"snapshot {snap} is x86 but the server type is arm" in message


def test_latest_means_the_newest_available_snapshot_of_the_architecture(api, clean_settings):
    """A snapshot still being created, or one of another architecture, is never `latest` (verify used to
    pick those)."""
    from imagekit.cloud import api as cloudapi
    from imagekit.cloud import lookups

    good = add_snapshot(api.cloud, profile="pick", created="2026-02-01T00:00:00+00:00")
    add_snapshot(api.cloud, profile="pick", status="creating", created="2026-03-01T00:00:00+00:00")
    add_snapshot(api.cloud, profile="pick", architecture="arm", created="2026-04-01T00:00:00+00:00")
    client = cloudapi.connect(api.target)
    assert lookups.snapshot(client, "latest", "pick", "x86").id == good
    with pytest.raises(ImagekitError, match="no snapshot of profile 'none'"):
        verify_snapshot(api.target, "latest", "cx23", lambda line: None, profile="none")


@pytest.mark.parametrize("change, message", [
    ({"server_type": "cx999"}, "server type 'cx999' does not exist"),
    ({"location": "mars1"}, "location 'mars1' does not exist"),
    ({"base_image": "plan9"}, "base image 'plan9' (x86) does not exist"),
    ({"profile": "no-such-profile"}, "unknown profile 'no-such-profile'"),
    ({"package_source": "ftp"}, "unknown package_source 'ftp'"),
    ({"name": "taken"}, "a snapshot named 'taken' exists already"),
])
def test_bad_build_input_fails_before_creating_anything(api, clean_settings, change, message):
    taken = add_snapshot(api.cloud, profile="other")
    api.cloud.store["images"][taken]["description"] = "taken"
    before = created(api.cloud)
    with pytest.raises(ImagekitError) as info:
        build_snapshot(api.target, BuildOptions(**change), lambda line: None)
    assert message in str(info.value)
    assert created(api.cloud) == before


def test_build_refuses_an_unknown_operator_key(api, clean_settings):
    clean_settings.setenv("HETZNER_SSH_KEY_ID", "nobody")
    with pytest.raises(ImagekitError, match="HETZNER_SSH_KEY_ID 'nobody'"):
        build_snapshot(api.target, BuildOptions(), lambda line: None)
