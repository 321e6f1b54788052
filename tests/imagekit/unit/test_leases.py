"""Leases against the local cloud's API in this process (records only): a run renews what it holds, only once its
lease has less than AHEAD - 1 intervals left (what lives shorter than an interval costs no request), stops when it
releases it, and hands back its current labels; ``gc`` sweeps what no lease covers, or one run's whatever its
lease. Runs and gc in separate processes, for real: tests/imagekit/e2e/test_team.py."""

from __future__ import annotations

import time

import pytest
from api_records import add_server

from imagekit import runid
from imagekit.cloud import api as cloudapi
from imagekit.cloud import leases
from imagekit.errors import InputError
from imagekit.fleet.gc import collect_garbage
from imagekit.host.keys import new_ed25519

INTERVAL = 1  # IMAGEKIT_LEASE_INTERVAL in these tests: a lease reaches 5 s ahead


@pytest.fixture
def short(clean_settings):
    clean_settings.setenv("IMAGEKIT_LEASE_INTERVAL", str(INTERVAL))
    return clean_settings


def test_a_lease_is_renewed_while_held_and_no_more_once_released(api, short):
    client = cloudapi.connect(api.target)
    key = client.ssh_keys.create(name="unit-leased", public_key=new_ed25519().public_openssh,
                                 labels={**cloudapi.labels(role="job"), **leases.label()})
    try:
        first = leases.until(key)
        assert first is not None and time.time() + 3 <= first <= time.time() + 5  # whole seconds
        leases.hold(key)
        time.sleep(3.5 * INTERVAL)  # the first renewal comes once less than AHEAD - 1 intervals are left
        current = leases.release(key)
        renewed = leases.until(client.ssh_keys.get_by_id(key.id))
        assert renewed is not None and renewed > first and leases.until(current) == renewed
        assert current.labels["role"] == "job"  # the rest of its labels untouched
        time.sleep(2 * INTERVAL)
        assert leases.until(client.ssh_keys.get_by_id(key.id)) == renewed  # released: no more renewals
    finally:
        client.ssh_keys.delete(key)


def test_ending_a_lease_takes_the_label_off(api, short):
    client = cloudapi.connect(api.target)
    sid = add_server(api.cloud, "unit-ready-now", {**cloudapi.labels(role="pool"), **leases.label()})
    server = leases.hold(client.servers.get_by_id(sid))
    done = leases.end(server)
    assert leases.KEY not in done.labels and done.labels["role"] == "pool"
    assert leases.until(client.servers.get_by_id(sid)) is None
    client.servers.delete(done)


def test_live_and_expired():
    class Resource:
        labels: dict[str, str] = {}

    r = Resource()
    assert not leases.live(r) and not leases.expired(r)  # no lease: delivered work, never garbage
    r.labels = {leases.KEY: str(int(time.time()) + 60)}
    assert leases.live(r) and not leases.expired(r)
    r.labels = {leases.KEY: str(int(time.time()) - 60)}
    assert not leases.live(r) and leases.expired(r) and not leases.expired(r, grace=120)
    r.labels = {leases.KEY: "garbled"}
    assert leases.expired(r)


def test_run_ids_are_label_values():
    assert runid.given("gh-123456789-2") == "gh-123456789-2"
    assert len(runid.given(None)) == len("20260101000000-abcdef")
    for bad in ("-x", "a b", "x" * 64, "run/1"):
        with pytest.raises(InputError, match="--run-id"):
            runid.given(bad)


def test_gc_sweeps_what_no_lease_covers_or_one_runs_whatever_its_lease(api, clean_settings):
    client = cloudapi.connect(api.target)
    now = time.time()

    def server(name: str, run: str, lease: float | None, role: str = "job") -> int:
        labels = cloudapi.labels(role=role, run=run, **({leases.KEY: str(int(now + lease))} if lease else {}))
        return add_server(api.cloud, name, labels)

    ended = server("unit-gc-ended", "run-a", -60)
    live = server("unit-gc-live", "run-a", 300)
    cancelled = server("unit-gc-cancelled", "run-b", 300)
    delivered = server("unit-gc-delivered", "run-b", None, role="agent")  # a ready agent of the cancelled run
    other = server("unit-gc-other", "run-c", 300, role="builder")
    key = client.ssh_keys.create(name="unit-gc-key", public_key=new_ed25519().public_openssh,
                                 labels=cloudapi.labels(role="job", run="run-b", **{leases.KEY: str(int(now + 300))}))
    lines: list[str] = []
    swept = collect_garbage(api.target, 0, lines.append)
    assert swept["job_servers"] == [ended] and swept["ssh_keys"] == []
    swept = collect_garbage(api.target, 0, lines.append, run="run-b")
    assert swept["job_servers"] == [cancelled] and swept["ssh_keys"] == [key.id] and swept["agent_servers"] == []
    assert f"deleting job server {cancelled} (unit-gc-cancelled): it belongs to run run-b" in lines
    left = set(api.cloud.store["servers"])
    assert {live, delivered, other} <= left and not {ended, cancelled} & left
    for sid in (live, delivered, other):
        client.servers.delete(client.servers.get_by_id(sid))
