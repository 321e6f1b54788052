"""Profiles as data: both shipped profiles load, their firewall is their UFW rules, and bad data is refused with the
file and the fix named."""

from __future__ import annotations

import shutil

import pytest

from imagekit import profiles
from imagekit.data import path as data_path
from imagekit.host import playbook
from imagekit.steps.install import playbook_variables


def test_the_shipped_profiles_load_and_their_firewall_is_their_ufw_rules():
    assert profiles.names() == ["agent", "runner"]
    for name, ports in (("agent", ["22/tcp", "41641/udp"]), ("runner", ["22/tcp", "8080/tcp"])):
        p = profiles.load(name)
        assert [r.ufw for r in p.firewall] == ports
        book = playbook.load(name, playbook_variables(name, "debian-12", "local", False, "x"))
        assert book.expect["ufw_rules"] == ports and book.expect["host"]["service"] == p.service
        assert any(step.file == p.unit_file for step in book.steps)
        assert (data_path(p.example_bundle) / p.entrypoint).is_file()


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace("service: openclaw-agent", "service: 'bad name'"), "service must be a plain"),
    (lambda t: t.replace("code_dir: /opt/openclaw/agent", "code_dir: ../etc"), "code_dir must be an absolute"),
    (lambda t: t.replace('{protocol: tcp, port: "22", description: SSH}', '{protocol: tcp, port: "23"}'),
     "must let SSH in"),
    (lambda t: t.replace("udp", "icmp"), r"protocol \(tcp or udp\)"),
    (lambda t: t.replace("tailscale: true", "tailscale: true\ncolour: blue"), "unknown keys colour"),
    (lambda t: t.replace("entrypoint: index.js", ""), "missing entrypoint"),
])
def test_bad_profile_data_is_refused(tmp_path, monkeypatch, change, message):
    shutil.copytree(data_path("playbooks"), tmp_path / "playbooks")
    target = tmp_path / "playbooks" / "profiles" / "agent.yml"
    target.write_text(change(target.read_text()))
    monkeypatch.setenv("IMAGEKIT_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.load("agent")


def test_an_unknown_profile_names_the_known_ones():
    with pytest.raises(profiles.ProfileError, match="unknown profile 'nope': choose one of agent, runner"):
        profiles.load("nope")
