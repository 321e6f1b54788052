"""The failure matrix: every step of build-snapshot and provision, failed on purpose on the local
cloud (API error, action ending in error, SSH refused, a failing playbook step, a crashing agent,
SIGINT, SIGKILL), must exit non-zero, name the step and the cause, and leave nothing it created.
Transient API trouble (20 % of calls failing, slow actions) must not fail a build or a provision."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from operator_cli import start

from imagekit.data import path as data_path
from localcloud.paths import HOST_ADDRESS
from tests.conftest import sweep

pytestmark = pytest.mark.e2e
SUBNET = HOST_ADDRESS.rsplit(".", 1)[0] + ".0/24"


def created_by_imagekit(client) -> dict:
    """Every server, key and firewall in the cloud, and the snapshots, by id."""
    return {"servers": sorted(s.id for s in client.servers.get_all() if s.status != "deleting"),
            "ssh_keys": sorted(k.id for k in client.ssh_keys.get_all()),
            "firewalls": sorted(f.id for f in client.firewalls.get_all()),
            "snapshots": sorted(i.id for i in client.images.get_all(type="snapshot"))}


@contextlib.contextmanager
def ssh_refused():
    """The local cloud's machines refuse SSH from this host (a TCP reset, as a closed port does)."""
    rule = ["OUTPUT", "-p", "tcp", "-d", SUBNET, "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)


def playbooks_with(tmp_path: Path, edit) -> dict:
    books = tmp_path / "playbooks"
    shutil.copytree(data_path("playbooks"), books)
    text = (books / "agent.yml").read_text()
    edited = edit(text)
    assert edited != text, "the injected fault no longer matches agent.yml: update the edit"
    (books / "agent.yml").write_text(edited)
    return {"IMAGEKIT_PLAYBOOKS_DIR": str(books)}


def first_step(step: str):
    return lambda text: text.replace("\nsteps:\n", "\nsteps:\n" + step, 1)


BROKEN_STEP = first_step('  - name: deliberately broken step\n    run: echo "disk on fire" && exit 3\n'
                         '    unless: "false"\n')
# A cloud-init that cannot run: `cloud-init clean` in the clean step fails (and only there).
BROKEN_CLOUD_INIT = first_step("  - name: break cloud-init\n    creates: /usr/local/bin/cloud-init\n"
                               "    run: printf '#!/bin/sh\\necho cloud-init is broken >&2\\nexit 7\\n' > "
                               "/usr/local/bin/cloud-init && chmod 755 /usr/local/bin/cloud-init\n")
MISSING_SERVICE = lambda text: text.replace("services_running: [", "services_running: [imagekit-no-such, ")  # noqa: E731


def api_fault(method: str, path: str, code: str = "server_error"):
    return {"faults": [{"method": method, "path": path, "code": code, "times": 1}]}


def action_fault(command: str):
    return {"faults": [{"action": command, "times": 1}]}


# (command, step named in the error (None: inputs are checked before any step), what the cause says, injection)
MATRIX = [
    ("build", None, "server_error", api_fault("GET", "^/v1/server_types")),
    ("build", "temporary SSH key", "server_error", api_fault("POST", "^/v1/ssh_keys$")),
    ("build", "boot", "creating builder server", action_fault("create_server")),
    ("build", "ssh", "SSH to", {"ssh_refused": True, "args": ["--ssh-timeout", "15"]}),
    ("build", "playbooks", "disk on fire", {"playbooks": BROKEN_STEP}),
    ("build", "checks (testinfra)", "imagekit-no-such", {"playbooks": MISSING_SERVICE}),
    ("build", "clean image", "cloud-init is broken", {"playbooks": BROKEN_CLOUD_INIT}),
    ("build", "shut down", "shutting down the builder failed", action_fault("shutdown_server")),
    ("build", "snapshot", "creating the snapshot failed", action_fault("create_image")),
    ("build", "ssh", "interrupted", {"sigint_after": "==> ssh"}),
    ("provision", None, "server_error", api_fault("GET", "^/v1/server_types")),
    ("provision", "temporary SSH key", "server_error", api_fault("POST", "^/v1/ssh_keys$")),
    ("provision", "firewall", "server_error", api_fault("GET", "^/v1/firewalls$")),
    ("provision", "create server", "server_error", api_fault("POST", "^/v1/servers$")),
    ("provision", "boot", "creating server", action_fault("create_server")),
    ("provision", "ssh", "SSH to", {"ssh_refused": True, "args": ["--timeout", "15"]}),
    ("provision", None, "is not a readable .tar.gz", {"bundle": "garbage"}),
    ("provision", "cloud-init", "cloud-init finished with an error", {"bundle": "unpackable"}),
    ("provision", "agent running", "openclaw-agent is", {"bundle": "crashing"}),
    ("provision", "playbooks", "disk on fire", {"playbooks": BROKEN_STEP, "args": ["--mode", "fallback"]}),
    ("provision", "agents", "interrupted", {"sigint_after": "] created"}),
]


def bundle(tmp_path: Path, kind: str) -> str:
    if kind == "garbage":  # not a tar archive: refused with the inputs, before anything exists
        path = tmp_path / "agent.tar.gz"
        path.write_bytes(b"this is not a tar archive")
        return str(path)
    if kind == "unpackable":  # a sound archive whose hard link names a member it lacks: the host's tar fails
        path = tmp_path / "unpackable.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            code = b'console.log("never runs");\n'
            info = tarfile.TarInfo("index.js")
            info.size = len(code)
            tar.addfile(info, io.BytesIO(code))
            link = tarfile.TarInfo("lib.js")
            link.type, link.linkname = tarfile.LNKTYPE, "missing.js"
            tar.addfile(link)
        return str(path)
    src = tmp_path / "crashing"
    src.mkdir()
    (src / "index.js").write_text('console.error("example crash: exiting 1"); process.exit(1);\n')
    with tarfile.open(tmp_path / "crashing.tar.gz", "w:gz") as tar:
        tar.add(src / "index.js", arcname="index.js")
    return str(tmp_path / "crashing.tar.gz")


# A build failing after its playbooks ran takes about a minute each; grown from the session's snapshot (`--from`),
# whose playbooks find most of their work done, about half of that.
SLOW = GROWN = {"checks (testinfra)", "clean image", "shut down", "snapshot"}


@pytest.mark.parametrize("command, step, cause, inject", [
    pytest.param(*case, marks=pytest.mark.slow) if case[0] == "build" and case[1] in SLOW else case for case in MATRIX],
                         ids=[f"{n:02d}-{c}-{(s or 'inputs').split()[0]}" for n, (c, s, _, _) in enumerate(MATRIX)])
def test_failure_at_every_step_leaves_nothing(client, cloud_endpoint, snapshot, tmp_path, command, step, cause,
                                              inject):
    args = ["build-snapshot", "--force"] if command == "build" else ["provision", "--agent-id", "matrix-1"]
    if command == "build" and step in GROWN:  # the same steps, a third of the time: its playbooks find most done
        args += ["--from", str(snapshot)]
    args += inject.get("args", [])
    env = playbooks_with(tmp_path, inject["playbooks"]) if "playbooks" in inject else {}
    if "bundle" in inject:
        args += ["--agent-bundle", bundle(tmp_path, inject["bundle"])]
    before = created_by_imagekit(client)
    cloud_endpoint.admin("PUT", "/_admin/faults", inject.get("faults", []))
    refusing = ssh_refused() if inject.get("ssh_refused") else contextlib.nullcontext()
    try:
        with refusing:
            proc = start(*args, env_extra=env)
            seen = ""
            if "sigint_after" in inject:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and inject["sigint_after"] not in seen:
                    line = proc.stderr.readline()
                    if not line:
                        break
                    seen += line
                assert inject["sigint_after"] in seen, seen
                time.sleep(1)
                proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=1200)
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    err = seen + err
    after = created_by_imagekit(client)
    try:
        assert proc.returncode != 0, err[-3000:]
        assert step is None or f"step '{step}' failed" in err, err[-3000:]
        assert "step '" not in err if step is None else True, err[-3000:]
        assert cause in err, err[-3000:]
        assert "Traceback" not in err
        assert after == before
    finally:
        # A failed case must not hand its leftovers to the next tests: one failure stays one failure.
        sweep(client, {kind: set(after[kind]) - set(before[kind]) for kind in after})



@pytest.mark.slow  # a build and a provision of its own
def test_transient_api_trouble_does_not_fail_a_build_or_a_provision(client, cloud_endpoint, snapshot,
                                                                   profile_firewall):
    """20 % of API calls fail (429 rate limit, 409 conflict, 502, 504) and actions run slow: the retries hold."""
    faults = [{"path": "^/v1/", "code": code, "rate": 0.05} for code in ("rate_limit_exceeded", "conflict")]
    faults += [{"path": "^/v1/", "status": status, "code": name, "rate": 0.05}
               for status, name in ((502, "bad_gateway"), (504, "timeout"))]
    faults += [{"action": "*", "rate": 0.5, "delay": 2, "fail": False}]
    cloud_endpoint.admin("PUT", "/_admin/faults", faults)
    try:
        build = start("build-snapshot", "--json", "--force", "--from", str(snapshot))  # grown: each step, half the time
        out, err = build.communicate(timeout=1800)
        assert build.returncode == 0, err[-3000:]
        image = json.loads(out)["snapshot_id"]
        prov = start("provision", "--agent-id", "flaky-1,flaky-2", "--snapshot", str(image), "--json")
        pout, perr = prov.communicate(timeout=900)
        assert prov.returncode == 0, perr[-3000:]
        assert {a["status"] for a in json.loads(pout)["agents"]} == {"ready"}
        fired = {r.get("code") or r.get("action"): r["fired"] for r in cloud_endpoint.admin("GET", "/_admin/faults")
                 ["faults"]}
        assert sum(fired.values()) >= 4, fired  # the faults really happened
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    done = start("deprovision", "--agent-id", "flaky-1,flaky-2")
    assert done.wait(300) == 0
    client.images.get_by_id(image).delete()


def test_a_kept_builder_can_be_logged_into_with_the_printed_command(client, cloud_endpoint, tmp_path):
    """--keep-on-failure keeps the builder and prints `ssh -i KEYFILE root@IP`: that command logs in; `gc --run`
    removes it (its lease would keep plain gc off it for five minutes)."""
    before = created_by_imagekit(client)
    run_id = f"kept-{time.time_ns()}"
    proc = start("build-snapshot", "--force", "--keep-on-failure", "--run-id", run_id,
                 env_extra=playbooks_with(tmp_path, BROKEN_STEP))
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode != 0 and "disk on fire" in err, err[-3000:]
    found = re.search(r"ssh -i (\S+) root@(\S+)", err)
    assert found, err[-3000:]
    key_file, ip = Path(found.group(1)), found.group(2)
    try:
        assert key_file.stat().st_mode & 0o777 == 0o600
        login = subprocess.run(["ssh", "-i", str(key_file), "-o", "StrictHostKeyChecking=no", "-o",
                                "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                f"root@{ip}", "cat /opt/openclaw/manifest.json 2>/dev/null; hostname"],
                               capture_output=True, text=True, timeout=60)
        assert login.returncode == 0 and login.stdout.strip().startswith("imagekit-build-"), login.stderr
    finally:
        gc = start("gc", "--run", run_id, "--json")
        gc.communicate(timeout=300)
        key_file.unlink(missing_ok=True)
    assert created_by_imagekit(client) == before


def test_gc_sweeps_what_a_killed_build_left(client):
    """A build killed outright renews its builder's and key's leases no more: once they end, plain gc sweeps."""
    before = created_by_imagekit(client)
    short = {"IMAGEKIT_LEASE_INTERVAL": "2"}  # the build's leases reach 10 s ahead
    proc = start("build-snapshot", "--force", env_extra=short)
    seen = ""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "==> playbooks" not in seen:
        seen += proc.stderr.readline()
    assert "==> playbooks" in seen, seen
    os.killpg(proc.pid, signal.SIGKILL)  # no cleanup can run
    proc.wait(30)
    left = created_by_imagekit(client)
    assert left["servers"] != before["servers"] and left["ssh_keys"] != before["ssh_keys"]
    gc = start("gc", "--json")
    out, err = gc.communicate(timeout=300)
    assert gc.returncode == 0, err
    assert created_by_imagekit(client) == left, "gc swept what a live lease still covers"
    time.sleep(11)  # the leases end
    gc = start("gc", "--json")
    out, err = gc.communicate(timeout=300)
    assert gc.returncode == 0, err
    assert created_by_imagekit(client) == before
