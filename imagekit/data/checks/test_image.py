"""The image, described as facts (pytest-testinfra). Run by `build-snapshot` against the
builder and by `verify` against a fresh clone; what to expect comes from the profile's
playbook data (IMAGEKIT_EXPECT_FILE), so versions follow the package source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

EXPECT = json.loads(Path(os.environ["IMAGEKIT_EXPECT_FILE"]).read_text())
CLONE = os.environ.get("IMAGEKIT_CLONE") == "1"
UNIT = "/etc/systemd/system/openclaw-agent.service"


@pytest.mark.parametrize("name", EXPECT["packages"])
def test_package_installed(host, name):
    assert host.package(name).is_installed


def test_node_major_follows_the_source(host):
    version = host.check_output("node --version")
    assert version.lstrip("v").split(".")[0] == str(EXPECT["node_major"])


def test_docker_and_compose(host):
    assert host.run("docker --version").rc == 0
    assert host.run(f"{EXPECT['compose_command']} version").rc == 0


def test_tailscale_installed_not_enrolled(host):
    assert host.run("tailscale version").rc == 0
    if "agent" in EXPECT:
        return  # a provisioned host is enrolled: test_agent.py checks how
    status = host.run("tailscale status --json")
    assert '"BackendState": "Running"' not in status.stdout


@pytest.mark.parametrize("name", EXPECT["services_enabled"])
def test_service_enabled(host, name):
    assert host.service(name).is_enabled


@pytest.mark.parametrize("name", EXPECT["services_running"])
def test_service_running(host, name):
    assert host.service(name).is_running


def test_ufw_denies_incoming_and_allows_the_two_ports(host):
    out = host.check_output("ufw status verbose")
    assert "Status: active" in out
    assert "deny (incoming)" in out
    for rule in EXPECT["ufw_rules"]:
        assert any(line.startswith(rule) and "ALLOW IN" in line for line in out.splitlines()), rule


def test_fail2ban_sshd_jail_active(host):
    out = host.check_output("fail2ban-client status sshd")
    assert "Currently banned" in out


def test_agent_user_cannot_log_in(host):
    user = host.user(EXPECT["user"])
    assert user.exists and user.shell == "/usr/sbin/nologin"


@pytest.mark.parametrize("path", EXPECT["dirs"])
def test_agent_directories(host, path):
    d = host.file(path)
    assert d.is_directory and d.user == EXPECT["user"] and d.group == EXPECT["user"]
    assert not d.mode & 0o007  # nothing for others


def test_agent_unit_enabled_not_started(host):
    unit = host.file(UNIT).content_string
    for line in ("ExecStart=/usr/bin/node /opt/openclaw/agent/index.js", "User=openclaw",
                 "EnvironmentFile=/opt/openclaw/config/agent.env", "ConditionPathExists=/opt/openclaw/config/agent.env",
                 "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths="):
        assert line in unit, line
    service = host.service("openclaw-agent")
    assert service.is_enabled
    if not host.file("/opt/openclaw/config/agent.env").exists:
        assert not service.is_running


def test_manifest(host):
    manifest = json.loads(host.file("/opt/openclaw/manifest.json").content_string)
    for key in ("profile", "build_id", "built_at", "source_revision", "base_image", "versions"):
        assert key in manifest, key
    assert manifest["profile"] == EXPECT.get("profile", manifest["profile"])


@pytest.mark.skipif(not CLONE, reason="clone checks run against a server booted from the snapshot")
def test_clone_has_its_own_identity(host):
    assert len(host.file("/etc/machine-id").content_string.strip()) == 32
    assert host.file("/etc/ssh/ssh_host_ed25519_key.pub").exists
    assert host.check_output("cloud-init status") == "status: done"
    snapshot_instance = os.environ.get("IMAGEKIT_BUILDER_MACHINE_ID")
    if snapshot_instance:
        assert host.file("/etc/machine-id").content_string.strip() != snapshot_instance
