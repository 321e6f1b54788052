"""``status --watch SECONDS``: the fleet checked again and again, only changes printed, the operator alerted once an
agent has failed ``--alert-after`` checks in a row and told once when it has recovered. It observes and alerts;
it deletes nothing. Ctrl-C or SIGTERM ends it once the host checks under way are done.

Frugal with the API (Hetzner allows 3600 requests an hour per project; a listing covers 50 servers): the cloud
and the tailnet are read every ``--api-every`` seconds, the hosts over SSH every sweep (``--parallel`` at once).
Before an alert the view is read again, so an agent whose server a roll replaced meanwhile is not reported down."""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import requests
from hcloud import APIException, Client

from ..alerts import Alerts
from ..cloud import api
from ..errors import ImagekitError, InputError
from ..target import Target
from . import metrics
from .health import AgentHealth, Alert, Change
from .status import PARALLEL, FleetView, Reach, check, now, read_view


class Printer(Protocol):
    """Where the watch's lines go (``print``)."""

    def __call__(self, line: str, /, *, flush: bool) -> None: ...


@dataclass(frozen=True)
class WatchOptions:
    interval: float
    alert_after: int = 3
    alert_command: str | None = None
    webhook: str | None = None
    api_every: float = 300
    parallel: int = PARALLEL
    api_only: bool = False
    metrics: Path | None = None
    json: bool = False

    def checked(self) -> WatchOptions:
        if self.interval <= 0 or self.api_every <= 0:
            raise InputError("--watch and --api-every take a number of seconds above 0")
        if self.alert_after < 1 or self.parallel < 1:
            raise InputError("--alert-after and --parallel take a whole number of at least 1")
        return self


@dataclass
class Track:
    failures: int = 0
    since: str | None = None  # when the failures in a row began
    since_at: float = 0.0  # the same, as time.time()
    alerted: bool = False
    seen: tuple[str, ...] | None = None  # what was last printed


@dataclass
class Tracker:
    """Each agent's failures in a row, its alert and what was last said of it: the watch's only state."""

    alert_after: int
    tracks: dict[str, Track] = field(default_factory=dict)

    def due(self, rows: list[AgentHealth]) -> set[int | None]:
        """The servers whose agent this sweep's failure would bring to an alert."""
        return {r["server_id"] for r in rows if r["healthy"] is not True and not self._track(r).alerted
                and self._track(r).failures + 1 >= self.alert_after}

    def observe(self, rows: list[AgentHealth], when: str) -> tuple[list[Change], list[Alert]]:
        """(changes to print, events to alert) after a sweep that found ``rows``."""
        changes: list[Change] = []
        events: list[Alert] = []
        present: set[str] = set()
        for r in rows:
            agent, track = _key(r), self._track(r)
            present.add(agent)
            state = _state(r)
            if (state, *r["problems"], *r["unchecked"]) != track.seen:
                changes.append({"time": when, "agent_id": agent, "state": state, "was": _was(track.seen),
                                "server_id": r["server_id"], "problems": r["problems"], "unchecked": r["unchecked"]})
                track.seen = (state, *r["problems"], *r["unchecked"])
            if state == "healthy":
                if track.alerted:
                    events.append(_event("recovered", r, track, when))
                self.tracks[agent] = Track(seen=track.seen)
                continue
            track.failures += 1
            if track.since is None:
                track.since, track.since_at = when, time.time()
            if track.failures >= self.alert_after and not track.alerted:
                track.alerted = True
                events.append(_event(state, r, track, when))
        for agent in set(self.tracks) - present:
            changes.append({"time": when, "agent_id": agent, "state": "gone", "was": _was(self.tracks[agent].seen),
                            "server_id": None, "problems": ["its server is gone"], "unchecked": []})
            del self.tracks[agent]
        return changes, events

    def _track(self, row: AgentHealth) -> Track:
        return self.tracks.setdefault(_key(row), Track())


def watch_fleet(target: Target, agent_ids: list[str], selector: str | None, o: WatchOptions,
                progress: Callable[[str], None], out: Printer = print) -> dict[str, Any]:
    reach = Reach.of(o.api_only)
    if reach.why_not:
        raise InputError(f"the watch checks the agents over SSH: {reach.why_not}")
    client, stop = api.connect(target), threading.Event()
    requests_before = api.requests_served(target)
    tracker, refreshes = Tracker(o.alert_after), 0
    sweeps: list[float] = []
    alerts_sent = recoveries = 0
    started = time.monotonic()
    view: FleetView | None = None
    with _ended_by_signals(stop), Alerts(o.alert_command, o.webhook, progress, hide=(target.token,)) as alerts:
        while not stop.is_set():
            t0 = time.monotonic()
            if view is None:
                view, refreshes = _first_view(client, target, agent_ids, selector, progress), 1
            elif o.api_only or t0 - view.read_at >= o.api_every:
                view, refreshes = _refresh(view, client, target, agent_ids, selector, progress), refreshes + 1
            view.read_at = min(view.read_at, t0)  # read for this sweep: the next read is --api-every after it began
            rows = check(view, reach, o.parallel, stop=stop)
            if stop.is_set():  # a sweep cut short says nothing
                break
            if (due := tracker.due(rows)) and view.read_at < t0:  # confirm against a fresh view before alerting
                view, refreshes = _refresh(view, client, target, agent_ids, selector, progress), refreshes + 1
                rows = _recheck(view, reach, o.parallel, rows, due)
            changes, events = tracker.observe(rows, now())
            for change in changes:
                out(json.dumps(change) if o.json else _describe(change), flush=True)
            for event in events:
                alerts.send(event)
                out(json.dumps(event) if o.json else f"{event['time']} alert: {event['event']} {event['agent_id']}",
                    flush=True)
                alerts_sent += event["event"] != "recovered"
                recoveries += event["event"] == "recovered"
            if o.metrics:
                metrics.write(o.metrics, rows)
            sweeps.append(time.monotonic() - t0)
            stop.wait(max(0.0, o.interval - (time.monotonic() - t0)))
    requests_after = api.requests_served(target)
    return {"sweeps": len(sweeps), "api_refreshes": refreshes, "alerts": alerts_sent, "recoveries": recoveries,
            "seconds": round(time.monotonic() - started, 1),
            "sweep_seconds": {"median": round(statistics.median(sweeps), 2) if sweeps else None,
                              "max": round(max(sweeps), 2) if sweeps else None},
            "api_requests": None if requests_before is None or requests_after is None else
            requests_after - requests_before}


def _first_view(client: Client, target: Target, agent_ids: list[str], selector: str | None,
                progress: Callable[[str], None]) -> FleetView:
    """The first read: what cannot be checked at all is an error now, not an alert for every agent later."""
    view = read_view(client, target, agent_ids, selector, progress)
    if view.missing:
        raise InputError(f"no such agent: {', '.join(view.missing)} (see `invoke list`)")
    if view.tailnet_gap:
        raise InputError(f"the watch checks the agents' Tailscale nodes, but {view.tailnet_gap}")
    return view


def _refresh(old: FleetView, client: Client, target: Target, agent_ids: list[str], selector: str | None,
             progress: Callable[[str], None]) -> FleetView:
    """A new view; when the API cannot be read, the last one (read again after --api-every), and when only the
    tailnet cannot, the last one's devices: a passing outage of either is no alert for every agent."""
    try:
        view = read_view(client, target, agent_ids, selector, progress)
    except (ImagekitError, APIException, requests.RequestException) as exc:
        progress(f"warning: the cloud API could not be read ({api.explain(exc)}): the last listing is used")
        old.read_at = time.monotonic()
        return old
    if view.tailnet_gap and old.devices is not None:
        view.tailnet, view.devices, view.tailnet_gap = old.tailnet, old.devices, None
    return view


def _recheck(view: FleetView, reach: Reach, parallel: int, rows: list[AgentHealth], due: set[int | None]
             ) -> list[AgentHealth]:
    """The sweep's rows after a fresh view: the due agents and servers new to the view checked again, the rows of
    servers gone from it (a roll replaced them) dropped."""
    live, old = {s.id for s in view.servers}, {r["server_id"] for r in rows}
    fresh = check(view, reach, parallel, only=due | (live - old))
    redone = {r["server_id"] for r in fresh}
    return sorted([r for r in rows if r["server_id"] in live - redone] + fresh, key=lambda r: r["name"])


def _key(row: AgentHealth) -> str:
    return row["agent_id"] or row["name"]


def _state(row: AgentHealth) -> str:
    return {True: "healthy", False: "unhealthy", None: "unchecked"}[row["healthy"]]


def _was(seen: tuple[str, ...] | None) -> str | None:
    return seen[0] if seen else None


def _event(kind: str, row: AgentHealth, track: Track, when: str) -> Alert:
    """What an alert command reads on stdin and a webhook receives: one JSON object."""
    event: Alert = {"event": kind, "time": when, "agent_id": _key(row), "server_id": row["server_id"],
                    "name": row["name"], "ipv4": row["ipv4"], "failures": track.failures, "failing_since": track.since,
                    "problems": row["problems"], "unchecked": row["unchecked"], "source": "imagekit status --watch"}
    if kind == "recovered":
        event["down_seconds"] = round(time.time() - track.since_at)
    return event


def _describe(change: Change) -> str:
    why = "; ".join(change["problems"] + change["unchecked"])
    was = f" (was {change['was']})" if change["was"] else ""
    return f"{change['time']} {change['agent_id']}: {change['state']}{was}" + (f": {why}" if why else "")


@contextmanager
def _ended_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM end the watch as a normal end (exit 0) once the host checks under way are done
    (each within its SSH timeout); a second signal acts as it would without the watch (Ctrl-C: exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def ended(signum: int, frame: FrameType | None) -> None:
        stop.set()
        restore()

    previous.update({sig: signal.signal(sig, ended) for sig in (signal.SIGINT, signal.SIGTERM)})
    try:
        yield
    finally:
        restore()


def watch_options(watch: str | None, alert_after: str | None, alert_command: str | None, webhook: str | None,
                  api_every: str | None, parallel: int, api_only: bool, metrics_file: str | None, json: bool
                  ) -> WatchOptions | None:
    """The watch's options from the command line; None without --watch (a single check), where the watch's own
    options are an error rather than silently ignored."""
    from ..command import number, whole_number

    if watch is None:
        given = [name for name, value in (("--alert-after", alert_after), ("--alert-command", alert_command),
                                          ("--webhook", webhook), ("--api-every", api_every)) if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: only with --watch SECONDS (a watch that checks again and again)")
        return None
    if api_only and api_every is not None:
        raise InputError("--api-every: with --api-only every check reads the API; set how often with --watch")
    return WatchOptions(interval=number("--watch", watch),
                        alert_after=whole_number("--alert-after", 3 if alert_after is None else alert_after),
                        alert_command=alert_command, webhook=webhook,
                        api_every=number("--api-every", 300 if api_every is None else api_every),
                        parallel=parallel, api_only=api_only, metrics=Path(metrics_file) if metrics_file else None,
                        json=json).checked()
