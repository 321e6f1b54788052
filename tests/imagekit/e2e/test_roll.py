"""`invoke roll` end to end: three agents provisioned from the session's snapshot (A) in a spread group of 3, a
snapshot B built with a playbook change that shows on the host, the agents rolled onto B two at a time (each keeping
its name, labels, Tailscale hostname, code and secrets; the replacements in a spread group of the roll's own, the
old group gone with its last host), `status` with no drift; then a roll whose replacement fails leaves the old
agent serving, and a roll killed between "replacement ready" and "take over" is finished by running it again.
Everything made is deleted at the end (the cloud as the test found it)."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
from operator_cli import agent_env, invoke, start
from test_provision import standin
from test_update import on_host

from imagekit.data import path as data_path

pytestmark = pytest.mark.e2e

AGENTS = ["roll-1", "roll-2", "roll-3"]
MARKER = "/etc/imagekit-roll-marker"


def playbooks_b(tmp_path) -> dict:
    """The packaged playbooks with one more step: snapshot B's hosts carry a file A's do not."""
    books = tmp_path / "playbooks-b"
    shutil.copytree(data_path("playbooks"), books)
    text = (books / "agent.yml").read_text()
    step = f'  - name: roll marker\n    file: {MARKER}\n    mode: "0644"\n    content: "built as B\\n"\n'
    (books / "agent.yml").write_text(text.replace("\nsteps:\n", "\nsteps:\n" + step, 1))
    return {"IMAGEKIT_PLAYBOOKS_DIR": str(books)}


def agent_bundle(tmp_path):
    d = tmp_path / "bundle"
    shutil.copytree(data_path("example_agent"), d)
    (d / "VERSION").write_text("carried-7\n")
    return d


def agent_servers(client, name: str) -> list:
    return [s for s in client.servers.get_all(label_selector=f"managed-by=imagekit,role=agent,agent-id={name}")
            if s.status != "deleting"]


HOST_STATE = ("hostname; cat /opt/openclaw/agent/VERSION; systemctl is-active openclaw-agent; "
              f"cat {MARKER} 2>/dev/null || echo no-marker; "
              "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value openclaw-agent)/environ | "
              "sed -n 's/^ROLL_TOKEN=//p'")


@pytest.mark.slow  # a build of its own, then the rolls
def test_roll_moves_agents_onto_a_new_snapshot_keeping_who_they_are(fleet, operator, snapshot, client, tmp_path,
                                                                     cloud_endpoint):
    key, sk = operator
    key_file = tmp_path / "operator_key"
    key_file.write_text(key.private_openssh)
    key_file.chmod(0o600)
    env = agent_env(sk, SSH_PRIVATE_KEY_PATH=str(key_file))
    secrets_file = tmp_path / "agents.env"
    secrets_file.write_text("ROLL_TOKEN=kept-across-rolls-42\n")
    # Provisioned with a temporary key (no SSH_PRIVATE_KEY_PATH): it is in the servers' creation data, which an
    # in-place rebuild would bring back into authorized_keys.
    made = invoke("provision", "--agent-id", ",".join(AGENTS), "--snapshot", str(snapshot), "--spread",
                  "--agent-bundle", str(agent_bundle(tmp_path)), "--secrets-file", str(secrets_file), "--json",
                  env_extra=agent_env(sk))
    snapshot_b = None
    try:
        assert made.returncode == 0, made.stderr[-3000:]
        old = {a["agent_id"]: a for a in json.loads(made.stdout)["agents"]}
        old_labels = {name: agent_servers(client, name)[0].labels for name in AGENTS}
        [first_group] = spread_groups(client)
        assert sorted(first_group.servers) == sorted(a["server_id"] for a in old.values())
        built = invoke("build-snapshot", "--json", "--force", env_extra=playbooks_b(tmp_path))
        assert built.returncode == 0, built.stderr[-3000:]
        snapshot_b = json.loads(built.stdout)["snapshot_id"]

        events = tmp_path / "roll.jsonl"
        rolled = invoke("roll", "--agent-id", ",".join(AGENTS), "--batch", "2", "--json", "--events", str(events),
                        env_extra=env)
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        result = json.loads(rolled.stdout)
        assert result["to"] == [snapshot_b] and result["stopped"] is False
        assert "batch 1/2: roll-1, roll-2" in rolled.stderr and "batch 2/2: roll-3" in rolled.stderr
        rows = {a["agent_id"]: a for a in result["agents"]}
        print("roll seconds per agent:", {name: row["seconds"] for name, row in rows.items()})
        for name in AGENTS:
            row = rows[name]
            assert row["status"] == "rolled" and row["error"] is None, row
            assert row["old_server_id"] == old[name]["server_id"] and row["old_snapshot_id"] == snapshot
            assert row["new_snapshot_id"] == snapshot_b and row["new_server_id"] != row["old_server_id"]
        assert "kept-across-rolls-42" not in rolled.stdout + rolled.stderr + events.read_text()
        lines = [json.loads(line) for line in events.read_text().splitlines()]
        assert [e["seconds"] for e in lines] == sorted(e["seconds"] for e in lines)
        assert lines[-1]["event"] == "run finished" and lines[-1]["detail"] == "succeeded: 3 agent(s) rolled"
        assert {e["agent"] for e in lines if e["event"] == "took over"} == set(AGENTS)
        [group] = spread_groups(client)  # the replacements' own; the old one went with its last host
        assert group.id != first_group.id and group.labels["run"] == result["run_id"], group
        assert sorted(group.servers) == sorted(row["new_server_id"] for row in rows.values())
        print("roll-1's steps:", [(e["step"], e["detail"]) for e in lines
                                  if e["agent"] == "roll-1" and e["event"] == "step finished"])

        # Who each agent is survived the move: name, labels, hostname, Tailscale hostname, code, secrets.
        live_ids = {s.id for s in client.servers.get_all()}
        devices = [d for d in standin().devices() if d["hostname"] in AGENTS]
        assert sorted(d["hostname"] for d in devices) == AGENTS  # the old hosts' nodes are gone, one each
        for name in AGENTS:
            assert old[name]["server_id"] not in live_ids
            [server] = agent_servers(client, name)
            assert server.id == rows[name]["new_server_id"] and server.name == name and server.image.id == snapshot_b
            # its labels, but for the two that belong to the new host: its own host key, and the roll's run
            mine = ("host-key", "run")
            assert {k: v for k, v in server.labels.items() if k not in mine} == \
                {k: v for k, v in old_labels[name].items() if k not in mine}
            assert server.labels["host-key"] != old_labels[name]["host-key"] and len(server.labels["host-key"]) == 43
            assert on_host(server.public_net.ipv4.ip, key, HOST_STATE).splitlines() == \
                [name, "carried-7", "active", "built as B", "kept-across-rolls-42"]

        status = invoke("status", "--agent-id", ",".join(AGENTS), "--json", env_extra=env)
        assert status.returncode == 0, status.stderr[-2000:]
        for a in json.loads(status.stdout)["agents"]:
            assert a["healthy"] and a["snapshot_id"] == snapshot_b and a["drift"] is False, a
            assert a["tailscale_online"] is True and a["restarts"] == 0, a

        again = invoke("roll", "--agent-id", ",".join(AGENTS), "--json", env_extra=env)
        assert again.returncode == 0, again.stderr[-2000:]
        assert {a["status"] for a in json.loads(again.stdout)["agents"]} == {"current"}

        # A replacement that fails (its create action ends in error) is deleted; the old host keeps serving.
        [serving] = agent_servers(client, "roll-1")
        cloud_endpoint.admin("PUT", "/_admin/faults", [{"action": "create_server", "times": 1}])
        try:
            failing = invoke("roll", "--agent-id", "roll-1", "--to", str(snapshot), "--json", env_extra=env)
        finally:
            cloud_endpoint.admin("DELETE", "/_admin/faults")
        assert failing.returncode == 1, failing.stderr[-2000:]
        [row] = json.loads(failing.stdout)["agents"]
        assert row["status"] == "failed" and "the old server still serves the agent" in row["error"], row
        assert [s.id for s in agent_servers(client, "roll-1")] == [serving.id]
        assert on_host(serving.public_net.ipv4.ip, key, "systemctl is-active openclaw-agent") == "active"
        assert [d["hostname"] for d in standin().devices()].count("roll-1") == 1
        assert "Traceback" not in failing.stderr
        assert [g.id for g in spread_groups(client)] == [group.id]  # the failed roll's own group went, empty

        # Killed between "replacement ready" and "take over" (the old server's deletion held up): both servers
        # exist; the same roll run again lets the ready replacement take over.
        [old_2] = agent_servers(client, "roll-2")
        cloud_endpoint.admin("PUT", "/_admin/faults", [{"method": "DELETE", "path": f"^/v1/servers/{old_2.id}$",
                                                       "code": "locked", "delay": 20, "times": 1}])
        try:
            proc = start("roll", "--agent-id", "roll-2", "--to", str(snapshot), env_extra=env)
            seen = ""
            while "] ready (" not in seen:
                line = proc.stderr.readline()
                assert line, seen[-3000:]
                seen += line
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            cloud_endpoint.admin("DELETE", "/_admin/faults")
        halfway = agent_servers(client, "roll-2")
        assert len(halfway) == 2 and {s.id for s in halfway if s.name == "roll-2"} == {old_2.id}, halfway
        [ready] = [s for s in halfway if s.id != old_2.id]
        assert ready.labels["rolling-from"] == str(old_2.id) and "lease-until" not in ready.labels
        finish = invoke("roll", "--agent-id", "roll-2", "--to", str(snapshot), "--json", env_extra=env)
        assert finish.returncode == 0, finish.stderr[-3000:]
        [row] = json.loads(finish.stdout)["agents"]
        assert row["status"] == "rolled" and row["new_server_id"] == ready.id, row
        [server] = agent_servers(client, "roll-2")
        assert server.id == ready.id and server.name == "roll-2" and "rolling-from" not in server.labels
        assert [d["hostname"] for d in standin().devices()].count("roll-2") == 1

        # --in-place: the agent's own server rebuilt from A; same id and address, the agent as it was.
        [own] = agent_servers(client, "roll-3")
        in_place = invoke("roll", "--agent-id", "roll-3", "--to", str(snapshot), "--in-place", "--json",
                          env_extra=env)
        assert in_place.returncode == 0, in_place.stderr[-3000:]
        [row] = json.loads(in_place.stdout)["agents"]
        print("in-place roll seconds:", row["seconds"])
        assert row["status"] == "rolled" and row["new_server_id"] == row["old_server_id"] == own.id, row
        [rebuilt] = agent_servers(client, "roll-3")
        assert rebuilt.id == own.id and rebuilt.public_net.ipv4.ip == own.public_net.ipv4.ip
        # its labels, but for its host key: a rebuilt host gets a new one (pinned anew)
        assert rebuilt.image.id == snapshot and rebuilt.labels["host-key"] != own.labels["host-key"]
        assert {k: v for k, v in rebuilt.labels.items() if k != "host-key"} == \
            {k: v for k, v in own.labels.items() if k != "host-key"}
        ip = rebuilt.public_net.ipv4.ip
        assert on_host(ip, key, HOST_STATE).splitlines() == \
            ["roll-3", "carried-7", "active", "no-marker", "kept-across-rolls-42"]
        keys = on_host(ip, key, "cat /root/.ssh/authorized_keys").splitlines()  # the host's, not its creation's
        assert [line.split()[1] for line in keys if line.strip()] == [key.public_openssh.split()[1]]
        assert [d["hostname"] for d in standin().devices()].count("roll-3") == 1
    finally:
        assert invoke("deprovision", "--agent-id", ",".join(AGENTS)).returncode == 0
        if snapshot_b is not None:
            client.images.get_by_id(snapshot_b).delete()


def spread_groups(client) -> list:
    return client.placement_groups.get_all(label_selector="managed-by=imagekit,role=spread")


def test_roll_refuses_bad_input_before_anything_exists(fleet, operator, tmp_path):
    _, sk = operator
    nobody = invoke("roll", "--agent-id", "roll-nobody", env_extra=agent_env(sk))
    assert nobody.returncode == 1 and "no agent of profile 'agent' matches" in nobody.stderr, nobody.stderr
    zero = invoke("roll", "--batch", "0", env_extra=agent_env(sk))
    assert zero.returncode == 1 and "--batch 0: give at least 1" in zero.stderr, zero.stderr
