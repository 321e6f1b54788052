"""A provisioned agent host, described as facts (pytest-testinfra). The same suite passes on
hosts made from the snapshot and on hosts made by the full-install fallback: that is the
parity the two modes promise (and a host claimed from the warm pool). What to expect comes from
IMAGEKIT_EXPECT_FILE: ``agent`` (who the host is) and ``host`` (the profile's data: its unit, user and paths)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from testinfra.host import Host

EXPECT = json.loads(Path(os.environ["IMAGEKIT_EXPECT_FILE"]).read_text())
AGENT, HOST = EXPECT["agent"], EXPECT["host"]
ENV_FILE, SERVICE, USER = HOST["env_file"], HOST["service"], HOST["user"]


def test_agent_env_holds_the_agents_identity_for_its_user_only(host: Host) -> None:
    env = host.file(ENV_FILE)
    assert env.is_file and env.user == USER and env.group == USER and env.mode == 0o600
    values = dict(line.split("=", 1) for line in env.content_string.splitlines() if "=" in line)
    assert values["AGENT_ID"] == AGENT["agent_id"]
    assert values["SERVER_NAME"] == AGENT["server_name"] == host.check_output("hostname")
    assert values["API_URL"] == AGENT["api_url"]


def test_provisioning_is_recorded(host: Host) -> None:
    record = json.loads(host.file(HOST["provisioned_at"]).content_string)
    assert record["agent_id"] == AGENT["agent_id"] and record["mode"] == AGENT["mode"]
    assert record["provisioned_at"].endswith("Z") and "@" not in record["provisioned_at"]


def test_agent_service_runs_the_bundle_as_its_user(host: Host) -> None:
    service = host.service(SERVICE)
    assert service.is_enabled and service.is_running
    pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    assert host.check_output(f"ps -o user= -p {pid}") == USER
    assert host.check_output(f"cat /proc/{pid}/cmdline | tr '\\0' ' '").strip() == HOST["command"]
    assert AGENT["agent_id"] in host.check_output(f"journalctl -u {SERVICE} --no-pager -o cat")


def test_agent_heartbeat(host: Host) -> None:
    """The example bundles write one (where is the profile's checks' data: ``heartbeat``)."""
    beat = json.loads(host.file(EXPECT["heartbeat"]).content_string)
    assert beat["agent_id"] == AGENT["agent_id"]


def test_tailscale_enrolled_with_the_tags(host: Host) -> None:
    if not AGENT["tags"]:
        status = host.run("tailscale status --json")  # the image may have no Tailscale at all (a runner's)
        assert status.rc != 0 or json.loads(status.stdout)["BackendState"] != "Running"
        return
    status = json.loads(host.check_output("tailscale status --json"))
    assert status["BackendState"] == "Running"
    assert sorted(status["Self"]["Tags"]) == sorted(AGENT["tags"])


def test_no_secret_or_staging_left_on_the_host(host: Host) -> None:
    assert not host.file("/run/imagekit/tailscale-authkey").exists
    assert not host.file("/var/lib/imagekit/agent").exists
    # Only the operator's keys (HETZNER_SSH_KEY_ID) may log in: provisioning's own key is gone.
    lines = host.file("/root/.ssh/authorized_keys").content_string.split("\n")
    assert sorted(line.split()[1] for line in lines if line.strip()) == sorted(AGENT["authorized_keys"])
