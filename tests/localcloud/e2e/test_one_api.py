"""One API, hard to starve (issue 23, item 4).

A guest that opens more idle connections to the API's bridge address than the API process may hold files
(and keeps reopening what the API closes) gets only its per-peer share; the operator's requests on loopback
keep answering fast meanwhile. A second API process started while the first lives exits before it touches
anything: the first one's guests keep running.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from imagekit.host import ssh
from localcloud import apilock
from localcloud.api import listeners
from localcloud.paths import DEFAULT_API_PORT, HOST_ADDRESS, MACHINE_PREFIX, layout
from tests.localcloud.conftest import boot_server

pytestmark = pytest.mark.e2e
FLOOD = 25_000
WORKERS = 5  # processes in the guest, each within its own file limit
HOLD = 25  # seconds the flood is kept up once open: the operator's 20 polls (~25 s) fall within it however fast

# Opens TOTAL connections to HOST:PORT from WORKERS processes, then for HOLD seconds reopens every one the
# server closes (or resets); prints per worker {"opened", "failed", "closed", "open_at_end"}.
FLOODER = r"""
import json, os, resource, select, socket, sys, time
host, port, total, workers, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
per = total // workers

def connect():
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return s
    except OSError:
        s.close()
        return None

def work():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(per + 64, soft), max(per + 64, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks, stats = {}, {"opened": 0, "failed": 0, "closed": 0}
    poller = select.poll()
    def add():
        s = connect()
        if s is None:
            stats["failed"] += 1
            return
        stats["opened"] += 1
        socks[s.fileno()] = s
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    for _ in range(per):
        add()
    end = time.monotonic() + hold
    while time.monotonic() < end:
        for fd, _ in poller.poll(200):
            s = socks.pop(fd)
            poller.unregister(fd)
            try:
                gone = s.recv(1, socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            s.close()
            stats["closed"] += gone
            add()
    time.sleep(2)  # what the server closed last has reached us: the rest is really open
    stats["open_at_end"] = len(socks) - len(poller.poll(0))
    return stats

pipes = []
for _ in range(workers):
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        os.write(w, json.dumps(work()).encode())
        os._exit(0)
    os.close(w)
    pipes.append(r)
print(json.dumps([json.loads(os.read(r, 4096)) for r in pipes]))
"""


def api_pid() -> int:
    return int(layout().pid_file.read_text())


def from_peer(peer: str) -> int:
    """Connections the API process holds (accepted, with a descriptor) from ``peer`` to its bridge address."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "src", f"{HOST_ADDRESS}:{DEFAULT_API_PORT}",
                          "dst", peer], capture_output=True, text=True, check=True).stdout
    return sum(f"pid={api_pid()}," in line for line in out.splitlines())


def machine_processes(server_id: int) -> str:
    return subprocess.run(["pgrep", "-f", "--", f"--machine={MACHINE_PREFIX}{server_id}"], capture_output=True,
                          text=True).stdout


def flood(address: str, keypair, cloud_endpoint) -> tuple[list[float], list[int], list[int], list[dict], int]:
    """Floods the API from the guest at ``address`` while the operator polls it on loopback; returns the
    operator's latencies, connections held from the guest and the API's files per poll, the flooders' figures,
    and the API's file limit."""
    conn = ssh.wait_for_ssh(address, keypair, pin=None, deadline=time.monotonic() + 120)
    file_limit = int(Path(f"/proc/{api_pid()}/limits").read_text().split("Max open files")[1].split()[0])
    assert FLOOD > file_limit, "the flood must be larger than what the API process may hold"
    try:
        code, _, err = ssh.run(conn, f"cat > /root/flood.py <<'EOF'\n{FLOODER}\nEOF")
        assert code == 0, err
        channel = conn.get_transport().open_session()
        channel.exec_command(f"python3 /root/flood.py {HOST_ADDRESS} {DEFAULT_API_PORT} {FLOOD} {WORKERS} {HOLD}")
        time.sleep(5)  # the flood is on
        latencies, held, fds = [], [], []
        url, headers = f"{cloud_endpoint.endpoint}/servers", {"Authorization": f"Bearer {cloud_endpoint.token}"}
        for _ in range(20):
            started = time.monotonic()
            response = requests.get(url, headers=headers, timeout=10)  # a new connection each time
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200
            held.append(from_peer(address))
            fds.append(len(os.listdir(f"/proc/{api_pid()}/fd")))
            time.sleep(1)
        out = channel.makefile().read().decode()
        assert channel.recv_exit_status() == 0, out
        return latencies, held, fds, json.loads(out), file_limit
    finally:
        conn.close()


def test_a_guest_holding_25000_connections_cannot_starve_the_operator(cloud_unchanged, cloud_endpoint, keypair):
    client = cloud_unchanged
    flooder, key = boot_server(client, keypair, "flooder")
    try:
        latencies, held, fds, workers, file_limit = flood(flooder.public_net.ipv4.ip, keypair, cloud_endpoint)
    finally:  # the flooder goes even when the flood fails (cloud_unchanged checks)
        client.servers.delete(flooder).wait_until_finished(120)
        key.delete()
    policy = listeners.policies([HOST_ADDRESS], file_limit)[HOST_ADDRESS]
    cap = policy.per_source
    opened, failed = sum(w["opened"] for w in workers), sum(w["failed"] for w in workers)
    report = (f"operator on loopback: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} requests; the API held {max(held)} "
              f"connections from the guest at most, median {statistics.median(held)} (cap {cap}), and {max(fds)} "
              f"files (limit {file_limit}); the guest opened {opened} (connect failed {failed}), the API closed "
              f"{sum(w['closed'] for w in workers)}, {sum(w['open_at_end'] for w in workers)} were open at its end")
    print(report)
    assert max(latencies) < 2, report
    # most of the time the guest holds its share; for an instant, also bursts asyncio accepted before the API
    # reset them (measured up to ~250), never more than the listener's own budget of the process's files
    assert statistics.median(held) <= cap and max(held) <= policy.connections, report
    assert max(fds) < file_limit // 2, report
    assert opened + failed >= FLOOD, report  # the whole flood was tried (how each one ended: the next assert)
    # what the guest still holds: its capped connections, and at most a backlog the kernel accepted for the API
    # (the API resets those as it accepts them)
    assert sum(w["open_at_end"] for w in workers) <= cap + listeners.BACKLOG, report


def test_a_second_api_process_exits_and_the_first_ones_guests_keep_running(cloud_unchanged, cloud_endpoint, keypair):
    client = cloud_unchanged
    server, key = boot_server(client, keypair, "one-api")
    nspawns = machine_processes(server.id)
    second = subprocess.run([sys.executable, "-m", "localcloud"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert second.returncode == apilock.ALREADY_RUNNING, second.stdout + second.stderr
    assert "not starting a second one" in second.stderr
    assert machine_processes(server.id) == nspawns != "", "the second API process touched the first one's guests"
    assert client.servers.get_by_id(server.id).status == "running"
    client.servers.delete(server).wait_until_finished(120)
    key.delete()
