"""A bill that cannot run away, without machines: --ttl's durations and labels, prices read from a recorded
/pricing document (tests/imagekit/unit/data/pricing.json, the document Hetzner serves, in the local cloud's
catalogue), and the caps against the local cloud's API in this process (records only: nothing boots). The TTL
expiring, gc deleting it and `invoke cost` on a real fleet: tests/imagekit/e2e/test_bill.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from api_records import add_server

from imagekit import ttl
from imagekit.cloud import api as cloudapi
from imagekit.cloud.pricing import HOURS_PER_MONTH, Pricing, Rate
from imagekit.errors import CloudError, InputError
from imagekit.steps import caps

PRICING = Pricing(json.loads((Path(__file__).parent / "data" / "pricing.json").read_text())["pricing"])


@pytest.mark.parametrize("text, seconds", [
    ("90m", 5400), ("4h", 14400), ("2d", 172800), ("1h30m", 5400), ("45s", 45), (" 2H ", 7200), ("366d", 366 * 86400),
    (None, None), ("", None)])
def test_durations(text, seconds):
    assert ttl.parse(text) == seconds


@pytest.mark.parametrize("text", ["0m", "90", "m", "1.5h", "-1h", "4 h", "2w", "1h 30m", "367d", "4hours"])
def test_bad_durations_say_how_to_write_one(text):
    with pytest.raises(InputError, match=r"--ttl .*e\.g\. 90m, 4h, 2d"):
        ttl.parse(text)


def test_the_label_is_an_absolute_time_a_label_may_hold():
    labels = ttl.label(5400, now=1_800_000_000.7)
    assert labels == {"expires-at": "1800005400"}
    server = SimpleNamespace(labels=labels)
    assert ttl.expires(server) == 1_800_005_400
    assert ttl.shown(server) == "2027-01-15T09:30:00Z"
    assert not ttl.expired(server, now=1_800_005_400) and ttl.expired(server, now=1_800_005_401)
    assert not ttl.expired(server, grace=60, now=1_800_005_401)  # gc's --older-than on top
    assert ttl.label(None) == {}
    for labels in ({}, {"expires-at": "soon"}, None):  # no TTL, or one nobody can read: never deleted on a guess
        assert ttl.expires(SimpleNamespace(labels=labels)) is None
        assert not ttl.expired(SimpleNamespace(labels=labels), now=time.time() + 10**9)


def test_prices_are_the_documents_gross_ones():
    assert PRICING.currency == "EUR" and PRICING.vat_rate == "19.00"
    cx23 = next(t for t in PRICING.document["server_types"] if t["name"] == "cx23")
    fsn1 = next(p for p in cx23["prices"] if p["location"] == "fsn1")
    assert PRICING.server("cx23", "fsn1") == Rate(float(fsn1["price_hourly"]["gross"]),
                                                  float(fsn1["price_monthly"]["gross"]))
    dearest = max(float(p["price_hourly"]["gross"]) for p in cx23["prices"])
    assert PRICING.server("cx23", None).hourly == dearest  # the API picks the location: the worst case
    assert PRICING.primary_ip("ipv4", "fsn1") == Rate(0.0008, 0.595)
    assert PRICING.primary_ip("ipv6", "fsn1") == Rate(0.0, 0.0)
    assert PRICING.image_gb_month() == 0.0142
    storage = PRICING.snapshots(10.0)
    assert storage.monthly == pytest.approx(0.142) and storage.hourly == pytest.approx(0.142 / HOURS_PER_MONTH)
    fleet = PRICING.server("cx23", "fsn1").times(3) + PRICING.primary_ip("ipv4", "fsn1").times(3)
    assert fleet.hourly == pytest.approx(3 * (0.0057 + 0.0008)) and fleet.monthly == pytest.approx(3 * (4.1531 + 0.595))


def test_a_price_the_document_lacks_is_an_error_naming_it():
    with pytest.raises(CloudError, match="no price for server type cx99"):
        PRICING.server("cx99", "fsn1")
    with pytest.raises(CloudError, match="no price for server type cx23 in mars1"):
        PRICING.server("cx23", "mars1")


def spec(server_type: str = "cx23", ipv4: bool = True):
    return SimpleNamespace(server_type=SimpleNamespace(name=server_type), locations=(None,), ipv4=ipv4)


@pytest.fixture
def project(api, clean_settings):
    """The in-process API with two servers of the test's; the count of every server in the project."""
    client = cloudapi.connect(api.target)
    made = [add_server(api.cloud, f"caps-{i}", {"managed-by": "imagekit", "role": "agent"}) for i in range(2)]
    yield client, len(api.cloud.store["servers"])
    for sid in made:
        api.cloud.store["servers"].pop(sid)


def test_without_caps_nothing_is_asked(project, monkeypatch):
    client, _ = project
    monkeypatch.setattr(client, "request", lambda *a, **k: pytest.fail("no cap: no request"))
    caps.check(client, "provision", 50, spec())


def test_the_server_cap_counts_what_runs_in_the_project(project, clean_settings):
    client, count = project
    clean_settings.setenv("IMAGEKIT_MAX_SERVERS", str(count + 2))
    caps.check(client, "provision", 2, spec())
    with pytest.raises(caps.CapExceeded) as refused:
        caps.check(client, "provision", 3, spec())
    assert str(refused.value) == (
        f"IMAGEKIT_MAX_SERVERS is {count + 2} and the project has {count} server(s): provision's 3 new server(s) "
        f"would make {count + 3}; nothing was created. Delete what is not needed (`invoke cost` shows what runs), "
        "ask provision for fewer, or raise IMAGEKIT_MAX_SERVERS")


def test_the_hourly_cap_counts_servers_and_their_ipv4s(project, clean_settings):
    client, count = project
    pricing = Pricing.read(client)
    now = caps.running(client, pricing).rate.hourly
    each = pricing.server("cx23", None).hourly + pricing.primary_ip("ipv4", None).hourly
    clean_settings.setenv("IMAGEKIT_MAX_HOURLY", f"{now + 2 * each + 0.00001:.6f}")
    caps.check(client, "pool fill", 2, spec())
    with pytest.raises(caps.CapExceeded, match=rf"IMAGEKIT_MAX_HOURLY is [\d.]+ EUR/hour \(gross\) and the "
                                               rf"project's {count} server\(s\) .* pool fill's 3 new server\(s\) at "
                                               rf"{each:.4f} each would make .*raise IMAGEKIT_MAX_HOURLY"):
        caps.check(client, "pool fill", 3, spec())


@pytest.mark.parametrize("name, value", [("IMAGEKIT_MAX_SERVERS", "ten"), ("IMAGEKIT_MAX_SERVERS", "-1"),
                                         ("IMAGEKIT_MAX_SERVERS", "2.5"), ("IMAGEKIT_MAX_HOURLY", "1 EUR")])
def test_a_bad_cap_is_named(project, clean_settings, name, value):
    clean_settings.setenv(name, value)
    with pytest.raises(InputError, match=f"{name} '{value}': give .* unset it for no cap"):
        caps.check(project[0], "run", 1, spec())


def test_gc_deletes_what_outlived_its_ttl_and_nothing_else(project, api):
    from imagekit.fleet.gc import collect_garbage

    client, _ = project
    agent = {"managed-by": "imagekit", "role": "agent", "tailscale": "no"}
    expired = add_server(api.cloud, "ttl-expired", {**agent, **ttl.label(-120)})
    recent = add_server(api.cloud, "ttl-recent", {**agent, **ttl.label(-30)})  # within --older-than 1
    alive = add_server(api.cloud, "ttl-alive", {**agent, **ttl.label(3600)})
    foreign = add_server(api.cloud, "ttl-foreign", {"role": "agent", **ttl.label(-120)})  # not imagekit's
    lines: list[str] = []
    try:
        assert collect_garbage(api.target, 1, lines.append, role="builder")["expired"] == []  # not its role
        swept = collect_garbage(api.target, 1, lines.append)
        assert swept["expired"] == swept["agent_servers"] == [expired]
        assert any(f"deleting expired agent server {expired} (ttl-expired): its TTL ended at" in line
                   for line in lines)
        assert {s.id for s in client.servers.get_all() if s.status != "deleting"} >= {recent, alive, foreign}
        assert collect_garbage(api.target, 0, lines.append)["expired"] == [recent]
    finally:
        for sid in (expired, recent, alive, foreign):
            api.cloud.store["servers"].pop(sid, None)
