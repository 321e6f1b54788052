"""The image, described as facts (pytest-testinfra). Run by `build-snapshot` against the
builder and by `verify` against a fresh clone; what to expect comes from the profile's
playbook data (IMAGEKIT_EXPECT_FILE), so versions follow the package source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from testinfra.host import Host

EXPECT = json.loads(Path(os.environ["IMAGEKIT_EXPECT_FILE"]).read_text())
CLONE = os.environ.get("IMAGEKIT_CLONE") == "1"
HOST = EXPECT["host"]  # the profile's data (playbooks/profiles/<profile>.yml): its unit, user, paths, ports
SERVICE = HOST["service"]
# What the profile's image holds decides which checks apply (an operator's profile may leave Docker, UFW, fail2ban
# or the metadata guard's nftables rule out; the agent and runner profiles have them all).
DOCKER = "compose_command" in EXPECT
UFW = "ufw_rules" in EXPECT
FAIL2BAN = "fail2ban" in EXPECT["packages"]
METADATA_GUARD = EXPECT.get("metadata_guard", True)


@pytest.mark.parametrize("name", EXPECT["packages"])
def test_package_installed(host: Host, name: str) -> None:
    assert host.package(name).is_installed


@pytest.mark.skipif("node_major" not in EXPECT, reason="the profile's image has no Node.js")
def test_node_major_follows_the_source(host: Host) -> None:
    version = host.check_output("node --version")
    assert version.lstrip("v").split(".")[0] == str(EXPECT["node_major"])


@pytest.mark.skipif(not DOCKER, reason="the profile's image has no Docker")
def test_docker_and_compose(host: Host) -> None:
    assert host.run("docker --version").rc == 0
    assert host.run(f"{EXPECT['compose_command']} version").rc == 0


@pytest.mark.skipif(not DOCKER, reason="the profile's image has no Docker")
def test_docker_answers_on_its_socket(host: Host) -> None:
    # Not started at boot (socket activation): the first client starts it.
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0
    assert host.service("docker").is_running


@pytest.mark.skipif(not HOST["tailscale"], reason="the profile's hosts do not enrol in Tailscale")
def test_tailscale_installed_not_enrolled(host: Host) -> None:
    assert host.run("tailscale version").rc == 0
    if "agent" in EXPECT:
        return  # a provisioned host is enrolled: test_agent.py checks how
    status = host.run("tailscale status --json")
    assert '"BackendState": "Running"' not in status.stdout


@pytest.mark.parametrize("name", EXPECT["services_enabled"])
def test_service_enabled(host: Host, name: str) -> None:
    assert host.service(name).is_enabled


@pytest.mark.parametrize("name", EXPECT["services_running"])
def test_service_running(host: Host, name: str) -> None:
    assert host.service(name).is_running


@pytest.mark.skipif(not UFW, reason="the profile's image has no UFW")
def test_ufw_denies_incoming_and_allows_the_two_ports(host: Host) -> None:
    out = host.check_output("ufw status verbose")
    assert "Status: active" in out
    assert "deny (incoming)" in out
    for rule in EXPECT["ufw_rules"]:
        assert any(line.startswith(rule) and "ALLOW IN" in line for line in out.splitlines()), rule


@pytest.mark.skipif(not FAIL2BAN, reason="the profile's image has no fail2ban")
def test_fail2ban_bans_repeat_offenders_for_longer(host: Host) -> None:
    assert "Currently banned" in host.check_output("fail2ban-client status sshd")
    assert "Currently banned" in host.check_output("fail2ban-client status recidive")
    assert host.check_output("fail2ban-client get sshd bantime.increment") == "True"


SSHD = {"passwordauthentication": "no", "kbdinteractiveauthentication": "no", "permitrootlogin": "without-password",
        "maxauthtries": "3", "logingracetime": "30", "x11forwarding": "no", "allowagentforwarding": "no"}


def test_sshd_keys_only_few_tries_no_forwarding(host: Host) -> None:
    effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert {k: effective.get(k) for k in SSHD} == SSHD


def test_security_updates_install_themselves(host: Host) -> None:
    assert host.package("unattended-upgrades").is_installed
    periodic = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    assert 'APT::Periodic::Update-Package-Lists "1";' in periodic


@pytest.mark.skipif(CLONE, reason="the builder is checked with fresh package lists; a clone has none")
def test_nothing_upgradable(host: Host) -> None:
    host.check_output("apt-get -q update >/dev/null 2>&1 || apt-get -q update")
    pending = [line for line in host.check_output("apt-get -s -o Debug::NoLocking=1 dist-upgrade").splitlines()
               if line.startswith("Inst ")]
    assert not pending, f"{len(pending)} packages upgradable:\n" + "\n".join(pending)


@pytest.mark.skipif(not (DOCKER and UFW), reason="the profile's image has no Docker or no UFW")
def test_docker_published_ports_obey_ufw(host: Host) -> None:
    rules = host.check_output("iptables -S DOCKER-USER").splitlines()
    assert "-A DOCKER-USER -j ufw-user-forward" in rules and "-A DOCKER-USER -j DROP" in rules
    if "-A DOCKER-USER -j RETURN" in rules:  # Docker's own, appended when it starts: it must come after ours
        assert rules.index("-A DOCKER-USER -j DROP") < rules.index("-A DOCKER-USER -j RETURN"), rules


def test_agent_unit_sandboxed(host: Host) -> None:
    # Parsed here, not with imagekit.host.audit: the checks stand alone (pytest runs them as files).
    out = host.check_output(f"systemd-analyze security --no-pager {SERVICE}")
    assert float(out.rsplit(f"{SERVICE}.service:", 1)[1].split()[0]) <= EXPECT.get("unit_exposure_max", 2.0), out
    assert host.check_output(f"systemctl show -p IPAddressDeny --value {SERVICE}") == "169.254.169.254/32"


@pytest.mark.skipif(not METADATA_GUARD, reason="the profile's image has no nftables guard (metadata_guard: false)")
def test_metadata_service_closed_to_the_service_user(host: Host) -> None:
    # By an nftables rule (IPAddressDeny= above is a BPF program systemd cannot attach in a container).
    assert host.service("imagekit-metadata-guard").is_enabled
    table = host.check_output("nft list table inet imagekit_metadata")
    uid = host.user(HOST["user"]).uid
    assert "ip daddr 169.254.169.254" in table and "reject" in table, table
    assert f'meta skuid "{HOST["user"]}"' in table or f"meta skuid {uid}" in table, table


def test_agent_user_cannot_log_in(host: Host) -> None:
    user = host.user(EXPECT["user"])
    assert user.exists and user.shell == "/usr/sbin/nologin"
    assert set(EXPECT.get("user_groups", [])) <= set(user.groups)


@pytest.mark.parametrize("path", EXPECT["dirs"])
def test_agent_directories(host: Host, path: str) -> None:
    d = host.file(path)
    assert d.is_directory and d.user == EXPECT["user"] and d.group == EXPECT["user"]
    assert not d.mode & 0o007  # nothing for others


def test_agent_unit_enabled_not_started(host: Host) -> None:
    unit = host.file(HOST["unit_file"]).content_string
    for line in (f"ExecStart={HOST['command']}", f"User={HOST['user']}", f"EnvironmentFile={HOST['env_file']}",
                 f"ConditionPathExists={HOST['env_file']}", "Restart=on-failure", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ReadWritePaths="):
        assert line in unit, line
    service = host.service(SERVICE)
    assert service.is_enabled
    if not host.file(HOST["env_file"]).exists:
        assert not service.is_running


def test_manifest(host: Host) -> None:
    manifest = json.loads(host.file(HOST["manifest"]).content_string)
    for key in ("profile", "build_id", "built_at", "source_revision", "base_image", "versions"):
        assert key in manifest, key
    assert manifest["profile"] == EXPECT.get("profile", manifest["profile"])


def test_one_host_key_the_one_imagekit_made(host: Host) -> None:
    # imagekit hands every server its ed25519 host key (pinned: this suite connected only because the host showed
    # it); no other type is generated, and sshd offers only it.
    assert sorted(host.check_output("ls /etc/ssh/ssh_host_*").split()) == [
        "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub"]
    assert host.check_output("sshd -T | grep -i '^hostkey '") == "hostkey /etc/ssh/ssh_host_ed25519_key"


@pytest.mark.skipif(not CLONE, reason="clone checks run against a server booted from the snapshot")
def test_clone_has_its_own_identity(host: Host) -> None:
    assert len(host.file("/etc/machine-id").content_string.strip()) == 32
    assert host.file("/etc/ssh/ssh_host_ed25519_key.pub").exists
    assert host.check_output("cloud-init status") == "status: done"
    snapshot_instance = os.environ.get("IMAGEKIT_BUILDER_MACHINE_ID")
    if snapshot_instance:
        assert host.file("/etc/machine-id").content_string.strip() != snapshot_instance


@pytest.mark.skipif(not DOCKER, reason="the profile's image has no Docker")
def test_docker_stores_images_with_overlay2(host: Host) -> None:
    # Not btrfs' subvolumes, which a snapshot of the root leaves out (images baked in would not run on clones).
    assert host.check_output("docker info --format '{{.Driver}}'") == "overlay2"


@pytest.mark.parametrize("reference", EXPECT.get("baked_images", []))
def test_baked_image_in_docker_storage(host: Host, reference: str) -> None:
    # Loaded at build time (the profile's `images:`): a host runs it without reaching any registry.
    assert host.run(f"docker image inspect --format '{{{{.Id}}}}' {reference}").rc == 0


@pytest.mark.skipif("baked_code" not in EXPECT, reason="no agent code baked into the image")
def test_baked_code_in_the_code_directory(host: Host) -> None:
    code = EXPECT["baked_code"]
    entry = host.file(code["entrypoint"])
    assert entry.is_file and entry.user == HOST["user"]
    if code["npm"]:  # its install step ran (`npm ci --omit=dev`): the locked dependencies are there
        assert host.file(f"{HOST['code_dir']}/node_modules/.package-lock.json").is_file


@pytest.mark.skipif(not UFW, reason="the profile's image has no UFW")
def test_ufw_filters_ipv6_as_ipv4(host: Host) -> None:
    assert host.file("/etc/default/ufw").contains("^IPV6=yes$")
    assert host.check_output("ip6tables -S INPUT").splitlines()[0] == "-P INPUT DROP"
    out = host.check_output("ufw status verbose").splitlines()
    for rule in EXPECT["ufw_rules"]:
        assert any(line.startswith(f"{rule} (v6)") and "ALLOW IN" in line for line in out), rule


@pytest.mark.skipif(not FAIL2BAN, reason="the profile's image has no fail2ban")
def test_fail2ban_bans_ipv6_addresses(host: Host) -> None:
    probe = "2001:db8::f2b"  # a documentation address: banned and unbanned again
    host.check_output(f"fail2ban-client set sshd banip {probe}")
    try:
        assert f"-s {probe}/128 -j REJECT" in host.check_output("ip6tables -S f2b-sshd")
    finally:
        host.run(f"fail2ban-client set sshd unbanip {probe}")


@pytest.mark.skipif(not (DOCKER and UFW), reason="the profile's image has no Docker or no UFW")
def test_containers_have_ipv6_masqueraded_and_forwarded_by_ufw(host: Host) -> None:
    host.check_output("docker info >/dev/null")  # Docker starts by its socket, and with it the masquerade
    subnet = host.check_output("docker network inspect bridge --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}'")
    [v6] = [s for s in subnet.split() if ":" in s]
    masquerade = host.check_output("ip6tables -t nat -S POSTROUTING")
    assert f"-A POSTROUTING -s {v6} ! -o docker0 -j MASQUERADE" in masquerade
    forwarded = host.check_output("ip6tables -S ufw6-after-forward")
    assert "-A ufw6-after-forward -i docker0 ! -o docker0 -j ACCEPT" in forwarded
