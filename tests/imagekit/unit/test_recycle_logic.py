"""Recycling's decision without a cloud: the minutes left of a server's started hour (Hetzner bills each started
hour from its creation), --recycle-min's bounds, and which servers go back into the pool while it has room."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from imagekit.errors import InputError
from imagekit.pool import recycle

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("age", "left"), [
    (timedelta(0), 60), (timedelta(minutes=10), 50), (timedelta(minutes=59, seconds=30), 0.5),
    (timedelta(hours=1), 60),  # a new hour has started, and is billed whole
    (timedelta(hours=3, minutes=45), 15), (timedelta(days=2, minutes=1), 59)])
def test_minutes_left_of_the_started_hour(age, left):
    assert recycle.minutes_left(NOW - age, NOW) == pytest.approx(left)


@pytest.mark.parametrize(("given", "expected"), [(None, 15), ("0", 0), (1, 1), ("59", 59), (" 30 ", 30)])
def test_recycle_min_bounds(given, expected, monkeypatch):
    monkeypatch.delenv("IMAGEKIT_RECYCLE_MIN", raising=False)
    assert recycle.minimum(given) == expected


@pytest.mark.parametrize("bad", ["-1", "60", "90", "15m", "", "1.5"])
def test_recycle_min_out_of_range_is_a_clear_error(bad):
    with pytest.raises(InputError, match=r"--recycle-min .*1 to 59, or 0 to always delete"):
        recycle.minimum(bad)


def test_setting_is_the_default(monkeypatch):
    monkeypatch.setenv("IMAGEKIT_RECYCLE_MIN", "40")
    assert recycle.minimum(None) == 40 and recycle.minimum("5") == 5
    monkeypatch.setenv("IMAGEKIT_RECYCLE_MIN", "61")
    with pytest.raises(InputError):
        recycle.minimum(None)


def _server(sid: int, minutes_ago: float, profile: str = "agent"):
    return SimpleNamespace(id=sid, name=f"agent-{sid}", created=NOW - timedelta(minutes=minutes_ago),
                           labels={"profile": profile})


@pytest.fixture
def pool(monkeypatch):
    """A pool of size 2 holding one host, servers fit to be pool hosts; the plan a placeholder."""
    monkeypatch.setattr(recycle, "unfit", lambda client, server, profile: None)
    monkeypatch.setattr(recycle.members, "size", lambda client, profile: 2)
    monkeypatch.setattr(recycle.members, "members", lambda client, profile: ["one host"])
    monkeypatch.setattr(recycle, "architecture", lambda server: "x86")
    monkeypatch.setattr(recycle, "type_of", lambda server: SimpleNamespace(name="cx23"))
    monkeypatch.setattr(recycle, "_plan", lambda client, server, profile: SimpleNamespace(profile=profile))


def test_most_minutes_left_is_recycled_while_the_pool_has_room(pool):
    servers = [_server(1, 50), _server(2, 5), _server(3, 125), _server(4, 30)]  # left: 10, 55, 55, 30 minutes
    chosen, why = recycle.choose(None, servers, 15, NOW)
    assert [c.server.id for c in chosen] == [2] and chosen[0].left == pytest.approx(55)
    assert "the pool of agent is full" in why[3] and "the pool of agent is full" in why[4]
    assert why[1] == "10 minutes left of its paid hour, fewer than --recycle-min 15"


def test_recycle_min_zero_deletes_everything(pool):
    chosen, why = recycle.choose(None, [_server(1, 1)], 0, NOW)
    assert chosen == [] and why == {1: "recycling is off (--recycle-min 0)"}


def test_no_plan_means_deleted_with_why(pool, monkeypatch):
    monkeypatch.setattr(recycle, "_plan", lambda client, server, profile: "no snapshot of agent for x86")
    chosen, why = recycle.choose(None, [_server(1, 1)], 15, NOW)
    assert chosen == [] and why == {1: "no snapshot of agent for x86"}
