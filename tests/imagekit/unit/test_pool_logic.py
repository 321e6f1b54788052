"""The warm pool's rules without a cloud: the reservation's shell lock (run for real in a scratch directory), which
hosts are claimable or stale, the cost, and a run's candidates handed out once each."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace

from imagekit.pool import claim, members
from imagekit.pool.fill import _why_stale


def _sh(command: str, scratch) -> int:
    return subprocess.run(["bash", "-c", command.replace("/run/imagekit", str(scratch))]).returncode


def test_one_reservation_per_host_until_it_lapses(tmp_path):
    assert _sh(claim._lock_command("run-a/agent-1/1"), tmp_path) == 0
    assert _sh(claim._lock_command("run-b/agent-2/2"), tmp_path) == 75  # taken: the other run moves on
    # A reservation past its deadline (its run died before the rename) is free again.
    (tmp_path / "pool-claim").write_text(f"{int(time.time()) - 1} run-a/agent-1/1\n")
    assert _sh(claim._lock_command("run-b/agent-2/2"), tmp_path) == 0
    assert (tmp_path / "pool-claim").read_text().split()[1] == "run-b/agent-2/2"


def test_racing_reservations_one_wins(tmp_path):
    codes = []
    threads = [threading.Thread(target=lambda i=i: codes.append(_sh(claim._lock_command(f"run-{i}/a/{i}"), tmp_path)))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [0] + [75] * 7


def test_release_removes_only_its_own_reservation(tmp_path):
    assert _sh(claim._lock_command("mine/a/1"), tmp_path) == 0
    _sh(claim._release_command("other/b/2"), tmp_path)
    assert (tmp_path / "pool-claim").exists()
    _sh(claim._release_command("mine/a/1"), tmp_path)
    assert not (tmp_path / "pool-claim").exists()
    assert _sh(claim._lock_command("other/b/2"), tmp_path) == 0


def server(**kw):
    base = dict(id=1, name="imagekit-pool-1", status="running", image=SimpleNamespace(id=7),
                labels={"managed-by": "imagekit", "role": "pool", "profile": "agent", "pool-key": "42",
                        "host-key": "pinned"},
                created=datetime.now(timezone.utc), location=SimpleNamespace(name="fsn1"),
                server_type=SimpleNamespace(name="cx23", prices=[
                    {"location": "fsn1", "price_hourly": {"gross": "0.0057"}, "price_monthly": {"gross": "4.15"}},
                    {"location": "nbg1", "price_hourly": {"gross": "0.0060"}, "price_monthly": {"gross": "4.50"}}]))
    return SimpleNamespace(**{**base, **kw})


def unpinned():
    return server(labels={k: v for k, v in server().labels.items() if k != "host-key"})


def test_claimable_means_ready_of_the_snapshot_reached_by_the_key_and_pinned():
    assert members.claimable_host(server(), 7, 42)
    assert not members.claimable_host(server(image=SimpleNamespace(id=6)), 7, 42)
    assert not members.claimable_host(server(), 7, 43)
    assert not members.claimable_host(server(status="starting"), 7, 42)
    filling = server(labels={**server().labels, "lease-until": str(int(time.time()) + 300)})
    assert not members.claimable_host(filling, 7, 42)
    assert not members.claimable_host(unpinned(), 7, 42)  # made before imagekit pinned host keys


def test_stale_hosts_are_an_older_snapshot_a_dead_fill_not_running_or_unpinned():
    assert _why_stale(server(), 7) is None
    assert "not the pool's snapshot" in _why_stale(server(image=SimpleNamespace(id=6)), 7)
    dead = server(status="starting", labels={**server().labels, "lease-until": str(int(time.time()) - 120)})
    assert "half-made" in _why_stale(dead, 7)
    alive = server(status="starting", labels={**server().labels, "lease-until": str(int(time.time()) + 120)})
    assert _why_stale(alive, 7) is None  # another fill is still booting it
    older = server(image=SimpleNamespace(id=6), labels={**server().labels, "lease-until": str(int(time.time()) + 120)})
    assert _why_stale(older, 7) is None  # nor deleted from under it
    assert "off" in _why_stale(server(status="off"), 7)
    assert "before imagekit pinned host keys" in _why_stale(unpinned(), 7)


def test_cost_is_each_hosts_price_in_its_location():
    c = members.cost([server(), server(id=2, location=SimpleNamespace(name="nbg1"))])
    assert c == {"hosts": 2, "hourly_gross": 0.0117, "monthly_gross": 8.65, "currency": "EUR"}
    assert "EUR/month" in members.describe_cost(c)


def test_candidates_are_handed_out_once_each():
    pool = claim.Candidates(list(range(50)))
    got, lock = [], threading.Lock()

    def take():
        while (item := pool.next()) is not None:
            with lock:
                got.append(item)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(50))


def test_a_pool_per_address_family_hosts_without_the_label_have_ipv4():
    dual, unlabelled = server(id=1, labels={**server().labels, "ipv4": "yes"}), server(id=2)
    v6 = server(id=3, labels={**server().labels, "ipv4": "no"})
    listing = SimpleNamespace(get_all=lambda label_selector: [dual, unlabelled, v6])
    client = SimpleNamespace(servers=listing)
    assert [s.id for s in members.members(client, "agent", True)] == [1, 2]
    assert [s.id for s in members.members(client, "agent", False)] == [3]
    assert [s.id for s in members.members(client, "agent")] == [1, 2, 3]
