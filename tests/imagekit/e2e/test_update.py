"""`invoke update` end to end: new agent code and secrets reach running agents over SSH batch by batch; a
bundle whose agent does not come up is rolled back on the first batch's host and the update stops there; an agent
that plants links in its code directory gets neither root to write through them nor its links into the new code.
A real agent's size (big_bundle: 50 MB in 5 000 files, with links inside) is staged over SSH at provisioning and by
the update. Agents from the session's snapshot, deprovisioned at the end (the cloud as the test found it)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import big_bundle
import pytest
from operator_cli import agent_env, invoke, pinned

from imagekit.data import path as data_path
from imagekit.host import ssh

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.e2e


def bundle(tmp_path, version: str, broken: bool = False, token: str | None = None):
    """The example agent with a VERSION file; broken: its process exits at once; with a token: a real agent's
    size (big_bundle), logging the token."""
    d = tmp_path / f"bundle-{version}"
    if token is not None:
        big_bundle.make(d, token)
    else:
        shutil.copytree(data_path("example_agent"), d)
    (d / "VERSION").write_text(version + "\n")
    if broken:
        (d / "index.js").write_text("console.error('broken on purpose'); process.exit(1);\n")
    return d


def on_host(ip: str, key, command: str, pin=None) -> str:
    """``command``'s output on the host at ``ip``, pinned to ``pin`` (else its host-key label, one API listing)."""
    conn = ssh.connect(ip, key, pin=pin or pinned(ip))
    try:
        return ssh.run(conn, command)[1].strip()
    finally:
        conn.close()


STATE = ("cat /opt/openclaw/agent/VERSION 2>/dev/null || echo none; systemctl is-active openclaw-agent; "
         "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value openclaw-agent)/environ | "
         "sed -n 's/^UPDATE_TOKEN=//p'")


def staged(made, agent: str) -> tuple[float, float]:
    """(MB, seconds) of an agent's code staged over SSH, from provision's ``code staged`` progress line."""
    line = next(x for x in made.stderr.splitlines() if x.startswith(f"[{agent}] code staged: "))
    size, took = line.split(": ", 1)[1].split(" (")[0].split(" MB in ")
    return float(size), float(took.removesuffix(" s"))


def test_update_reaches_every_agent_and_a_broken_bundle_is_rolled_back(fleet, operator, tmp_path):
    """Provisioned with a real agent's size (over SSH: it cannot fit in the user data), then updated with another
    one: the code on each host is the bundle's tree, links included, and the service runs it."""
    key, sk = operator
    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    env = agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file))
    first, second = secrets.token_hex(6), secrets.token_hex(6)
    big = bundle(tmp_path, "1", token=first)
    made = invoke("provision", "--agent-id", "upd-1,upd-2", "--no-tailscale", "--json", "--agent-bundle", str(big),
                  env_extra=env)
    assert made.returncode == 0, made.stderr[-3000:]
    ips = {a["agent_id"]: a["ipv4"] for a in json.loads(made.stdout)["agents"]}
    try:
        for agent, ip in ips.items():
            size, took = staged(made, agent)
            print(f"{agent}: {size:.1f} MB staged over SSH in {took:.2f} s: {took / size * 10:.2f} s per 10 MB")
            assert size > 40
            assert on_host(ip, key, big_bundle.TREE) == big_bundle.tree(big)
            assert on_host(ip, key, big_bundle.runs_it(first)).splitlines() == ["active", "1"]
        secrets_file = tmp_path / "new.env"
        secrets_file.write_text("UPDATE_TOKEN=rotated-7\n")
        events = tmp_path / "events.jsonl"
        newer = bundle(tmp_path, "2", token=second)
        good = invoke("update", "--agent-id", "upd-1,upd-2", "--agent-bundle", str(newer),
                      "--secrets-file", str(secrets_file), "--batch", "1", "--json", "--events", str(events),
                      env_extra=env)
        assert good.returncode == 0, good.stderr[-3000:]
        result = json.loads(good.stdout)
        assert [(a["agent_id"], a["status"]) for a in result["agents"]] == [("upd-1", "updated"), ("upd-2", "updated")]
        assert "batch 1/2: upd-1" in good.stderr and "batch 2/2: upd-2" in good.stderr
        print("update seconds per agent (50 MB of code each):", [a["seconds"] for a in result["agents"]])
        for ip in ips.values():
            assert on_host(ip, key, STATE).splitlines() == ["2", "active", "rotated-7"]
            assert on_host(ip, key, "ls /opt/openclaw | grep -c previous || true") == "0"  # nothing kept aside
            assert on_host(ip, key, big_bundle.TREE) == big_bundle.tree(newer)
            assert on_host(ip, key, big_bundle.runs_it(second)).splitlines() == ["active", "1"]
        rows = [json.loads(line) for line in events.read_text().splitlines()]
        assert rows[-1]["event"] == "run finished" and rows[-1]["detail"] == "succeeded: 2 agent(s) updated"
        assert "rotated-7" not in good.stdout + good.stderr + events.read_text()

        broken = invoke("update", "--agent-id", "upd-1,upd-2", "--agent-bundle",
                        str(bundle(tmp_path, "3", broken=True)), "--json", env_extra=env)
        assert broken.returncode == 1, broken.stderr[-3000:]
        first, second = json.loads(broken.stdout)["agents"]
        assert first["status"] == "rolled back" and "openclaw-agent is" in first["error"], first
        assert second["status"] == "not updated" and json.loads(broken.stdout)["stopped"] is True
        for ip in ips.values():  # the first host has its previous code (and secrets) back; the second was untouched
            assert on_host(ip, key, STATE).splitlines() == ["2", "active", "rotated-7"]
    finally:
        assert invoke("deprovision", "--agent-id", "upd-1,upd-2").returncode == 0


def test_update_needs_something_to_update_and_the_operators_key(fleet, operator):
    _, sk = operator
    nothing = invoke("update", "--agent-id", "upd-x", env_extra=agent_env(sk))
    assert nothing.returncode == 1 and "nothing to update" in nothing.stderr
    keyless = invoke("update", "--agent-id", "upd-x", "--secrets-file", "/dev/null", env_extra=agent_env(sk))
    assert keyless.returncode == 1 and "SSH_PRIVATE_KEY_PATH is not set" in keyless.stderr


CANARY = "stat -c '%U %a %s' /etc/imagekit-canary; cat /etc/imagekit-canary"


def test_an_agent_planting_links_in_its_code_gets_nothing_through_them(fleet, operator, tmp_path):
    """The running agent keeps replacing every entry of its code directory by a link to a root-owned file. The
    update stops it before touching its code: the file keeps its content, owner and mode, and the new code is
    the bundle's, with none of the agent's links in it (an update that unpacked into the live directory would
    find VERSION replaced by a link to that file)."""
    key, sk = operator
    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    env = agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file))
    made = invoke("provision", "--agent-id", "upd-hostile", "--no-tailscale", "--json", "--agent-bundle",
                  str(HERE / "link_planting_agent"), env_extra=env)
    assert made.returncode == 0, made.stderr[-3000:]
    [agent] = json.loads(made.stdout)["agents"]
    ip = agent["ipv4"]
    try:
        on_host(ip, key, "printf 'root only\\n' > /etc/imagekit-canary && chmod 0644 /etc/imagekit-canary")
        before = on_host(ip, key, CANARY)
        assert before == "root 644 10\nroot only"
        planted = on_host(ip, key, "sleep 0.5; find /opt/openclaw/agent -type l -lname /etc/imagekit-canary | sort")
        assert "/opt/openclaw/agent/VERSION" in planted.splitlines(), planted  # the agent is at work
        done = invoke("update", "--agent-id", "upd-hostile", "--agent-bundle", str(bundle(tmp_path, "2")), "--json",
                      env_extra=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert [a["status"] for a in json.loads(done.stdout)["agents"]] == ["updated"]
        assert on_host(ip, key, CANARY) == before
        assert on_host(ip, key, "find /opt/openclaw/agent -type l | wc -l; cat /opt/openclaw/agent/VERSION; "
                                "stat -c '%U %a' /opt/openclaw/agent; ls /opt/openclaw").splitlines() == \
            ["0", "2", "openclaw 750", "agent", "config", "logs", "manifest.json"]
        assert on_host(ip, key, STATE).splitlines()[:2] == ["2", "active"]
    finally:
        assert invoke("deprovision", "--agent-id", "upd-hostile").returncode == 0
