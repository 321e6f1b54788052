"""The watch's judgement over sweeps (changes, one alert after N failures in a row, one recovery), its options,
the alerts' delivery (a real command, a real HTTP server on loopback) and the Prometheus text of `--metrics`
(parsed back line by line). The watch on real hosts: tests/imagekit/e2e/test_status_watch.py."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from imagekit import alerts
from imagekit.errors import InputError
from imagekit.fleet import metrics
from imagekit.fleet.watch import Tracker, watch_options


def row(healthy, agent="a-1", server_id=1, problems=(), unchecked=(), **extra):
    return {"agent_id": agent, "server_id": server_id, "name": agent, "ipv4": "10.0.0.2", "healthy": healthy,
            "problems": list(problems), "unchecked": list(unchecked), "status": "running", "service": "active",
            "restarts": 0, "uptime_seconds": 12.5, "tailscale_online": True, "drift": False, "server_type": "cx23",
            "location": "fsn1", "hourly_cost_gross": 0.0071, **extra}


def test_one_alert_after_n_failures_in_a_row_and_one_recovery():
    t = Tracker(alert_after=2)
    sick = row(False, problems=["openclaw-agent is inactive"])
    seen = [t.observe([r], f"t{i}") for i, r in enumerate([row(True), sick, sick, sick, row(True), row(True)])]
    changes = [[(c["state"], c["was"]) for c in ch] for ch, _ in seen]
    assert changes == [[("healthy", None)], [("unhealthy", "healthy")], [], [], [("healthy", "unhealthy")], []]
    events = [[(e["event"], e["failures"], e["failing_since"]) for e in ev] for _, ev in seen]
    assert events == [[], [], [("unhealthy", 2, "t1")], [], [("recovered", 3, "t1")], []]
    assert json.loads(json.dumps(seen[2][1][0]))["problems"] == ["openclaw-agent is inactive"]


def test_unchecked_counts_as_a_failure_and_a_blip_alerts_nobody():
    t = Tracker(alert_after=3)
    blind = row(None, unchecked=["openclaw-agent: SSH to 10.0.0.2 failed (timed out)"])
    assert t.due([blind]) == set()
    for r in [blind, blind, row(True), blind, blind]:  # never three in a row
        assert t.observe([r], "t")[1] == []
    assert t.due([blind]) == {1}  # the next failure would alert: the watch reads the API again first
    assert [e["event"] for e in t.observe([blind], "t")[1]] == ["unchecked"]


def test_an_agent_gone_from_the_listing_is_said_once():
    t = Tracker(alert_after=1)
    t.observe([row(True), row(True, agent="b", server_id=2)], "t0")
    changes, events = t.observe([row(True)], "t1")
    assert [(c["agent_id"], c["state"]) for c in changes] == [("b", "gone")] and events == []
    assert t.observe([row(True)], "t2") == ([], [])


@pytest.mark.parametrize("given, message", [
    (dict(alert_after=2), "--alert-after: only with --watch"),
    (dict(webhook="https://x", api_every=5), "--webhook, --api-every: only with --watch"),
    (dict(watch=0), "above 0"),
    (dict(watch=5, alert_after=0), "at least 1"),
    (dict(watch=5, api_only=True, api_every=60), "with --api-only every check reads the API"),
    (dict(watch="soon"), "--watch 'soon': give a number of seconds"),
])
def test_the_watchs_options_are_checked(given, message):
    args = dict(watch=None, alert_after=None, alert_command=None, webhook=None, api_every=None, parallel=10,
                api_only=False, metrics_file=None, json=False) | given
    with pytest.raises(InputError, match=re.escape(message)):
        watch_options(**args)


def test_the_watchs_defaults():
    o = watch_options(watch="2", alert_after=None, alert_command=None, webhook=None, api_every=None, parallel=10,
                      api_only=False, metrics_file=None, json=False)
    assert (o.interval, o.alert_after, o.api_every, o.parallel) == (2.0, 3, 300.0, 10)
    assert watch_options(None, None, None, None, None, 10, True, "m.prom", False) is None  # one check


def test_an_alert_command_reads_the_event_without_our_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("HCLOUD_TOKEN", "tok-hidden-1")
    monkeypatch.setenv("MY_TOKEN_VAR", "tok-hidden-2")
    got = tmp_path / "alerts.jsonl"
    with alerts.Alerts(f"cat >> {got}; env >> {tmp_path}/env", None, print, hide=("tok-hidden-2",)) as a:
        a.send({"event": "unhealthy", "agent_id": "a-1"})
    assert json.loads(got.read_text()) == {"event": "unhealthy", "agent_id": "a-1"}
    assert "tok-hidden" not in (tmp_path / "env").read_text()


def test_a_hanging_receiver_never_holds_the_watch_up(tmp_path, monkeypatch):
    monkeypatch.setattr(alerts, "TIMEOUT", 0.5)
    said = []
    started = time.monotonic()
    with alerts.Alerts(f"sleep 30; touch {tmp_path}/late", None, said.append) as a:
        a.send({"event": "unhealthy"})
        assert time.monotonic() - started < 0.3  # sent in the background
    assert time.monotonic() - started < 5 and said == ["warning: the alert command did not finish within 0.5 s "
                                                       "and was stopped"]
    time.sleep(0.2)
    assert not (tmp_path / "late").exists()  # the whole command was stopped, not only its shell


class Receiver(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        Receiver.bodies.append((self.headers["Content-Type"], self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(500 if b"fail" in Receiver.bodies[-1][1] else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_gets_the_event_as_json_and_its_url_is_never_said():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    said = []
    url = f"http://user:secret-in-url@127.0.0.1:{server.server_port}/hook/secret-path"
    try:
        with alerts.Alerts(None, url, said.append) as a:
            a.send({"event": "recovered", "agent_id": "a-1"})
            a.send({"event": "fail"})
    finally:
        server.shutdown()
    assert sorted(Receiver.bodies) == [("application/json", b'{"event": "fail"}'),
                                       ("application/json", b'{"event": "recovered", "agent_id": "a-1"}')]
    assert said == [f"warning: the webhook at 127.0.0.1:{server.server_port} answered HTTP 500"]
    with pytest.raises(InputError, match="--webhook: give an http"):
        alerts.Alerts(None, "file:///etc/passwd", said.append)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse(text: str) -> dict:
    """Prometheus' text format, line by line: {name: {"help", "type", "samples": [(labels, value)]}}; every
    sample's family announced (HELP, then TYPE) before it."""
    families: dict = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, text_ = line[7:].split(" ", 1)
            assert name not in families, f"{name} twice"
            families[name] = {"help": text_, "samples": []}
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert families[name].get("type") is None and kind == "gauge"
            families[name]["type"] = kind
        else:
            name, labels, value = SAMPLE.match(line).groups()
            assert families[name]["type"] == "gauge", line
            pairs = LABEL.findall(labels or "")
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), line
            families[name]["samples"].append((dict(pairs), float(value)))
    return families


def test_the_metrics_parse_back_as_prometheus_text(tmp_path):
    agents = [row(True), row(False, agent="b", server_id=2, problems=["server is off"], status="off", service=None,
                             restarts=None, uptime_seconds=None, tailscale_online=False, drift=True),
              row(None, agent="c", server_id=3, unchecked=["openclaw-agent: no key"], service=None, restarts=None,
                  uptime_seconds=None, hourly_cost_gross=0.0119, server_type="cx33", location='hel"1\\')]
    path = tmp_path / "imagekit.prom"
    metrics.write(path, agents)
    assert [p.name for p in tmp_path.iterdir()] == ["imagekit.prom"] and oct(path.stat().st_mode & 0o777) == "0o644"
    families = parse(path.read_text())

    def values(name):
        return {s[0].get("agent_id"): s[1] for s in families[name]["samples"]}

    assert values("imagekit_agent_healthy") == {"a-1": 1, "b": 0, "c": 0}
    assert values("imagekit_agent_checked") == {"a-1": 1, "b": 1, "c": 0}
    assert values("imagekit_agent_up") == {"a-1": 1, "b": 0}  # c's service is unknown: no sample
    assert values("imagekit_agent_restarts") == {"a-1": 0} and values("imagekit_agent_uptime_seconds") == {"a-1": 12.5}
    assert values("imagekit_agent_tailscale_online") == {"a-1": 1, "b": 0, "c": 1}
    assert values("imagekit_agent_snapshot_drift") == {"a-1": 0, "b": 1, "c": 0}
    cost = {s[0]["agent_id"]: s for s in families["imagekit_agent_hourly_cost_euros"]["samples"]}
    assert cost["c"] == ({"agent_id": "c", "server_type": "cx33", "location": 'hel\\"1\\\\'}, 0.0119)
    assert values("imagekit_fleet_agents") == {None: 3} and values("imagekit_fleet_unhealthy_agents") == {None: 1}
    assert values("imagekit_fleet_unchecked_agents") == {None: 1}
    assert values("imagekit_fleet_hourly_cost_euros") == {None: round(0.0071 * 2 + 0.0119, 4)}
    assert abs(values("imagekit_status_timestamp_seconds")[None] - time.time()) < 60


def test_a_passing_outage_of_the_api_or_the_tailnet_keeps_the_last_view(monkeypatch):
    from hcloud import APIException

    from imagekit.fleet import watch
    from imagekit.fleet.status import FleetView

    said = []
    old = FleetView(["server"], {}, tailnet="tn", devices=[{"id": "d1"}], read_at=0.0)

    def down(*args):
        raise APIException("service_error", "the API is down", None)

    monkeypatch.setattr(watch, "read_view", down)
    assert watch._refresh(old, None, None, [], None, said.append) is old and old.read_at > 0  # asked again later
    assert said == ["warning: the cloud API could not be read (the API is down (API error service_error)): the last "
                    "listing is used"]
    monkeypatch.setattr(watch, "read_view", lambda *args: FleetView(["new"], {}, tailnet_gap="tailnet down"))
    new = watch._refresh(old, None, None, [], None, said.append)
    assert new.servers == ["new"] and (new.tailnet, new.devices, new.tailnet_gap) == ("tn", [{"id": "d1"}], None)
