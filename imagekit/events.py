"""Live events: what a run does, as it happens, one JSON object per line (``--events FILE``, or ``-``
for stdout), for dashboards that read a stream instead of waiting for the run's result.

Each line: ``{"time": ISO 8601 UTC, "run_id", "agent": id or null, "step": name or null, "event",
"seconds": since the run started, "detail": text or null}``. A run's first event is ``run started``
and its last ``run finished``, whose detail is ``succeeded`` or ``failed: …``. Events carry what the
progress lines say, never a secret. ``python -m imagekit.events FILE`` draws the agents' timelines
as a Mermaid gantt chart (the provision workflow's job summary)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

from .errors import InputError


class StepEvents(Protocol):
    """What run_steps calls for each step's start, end or failure."""

    def __call__(self, step: str, event: str, detail: str | None = None, /) -> None: ...


class Events:
    """The run's event stream; without a sink every call is a no-op."""

    def __init__(self, sink: TextIO | None = None, run_id: str = ""):
        self.sink, self.run_id = sink, run_id
        self.started = time.monotonic()
        self.outcome: str | None = None  # the run's last word when it returns (else "succeeded")
        self._lock = threading.Lock()

    def emit(self, event: str, *, agent: str | None = None, step: str | None = None, detail: str | None = None
             ) -> None:
        if self.sink is None:
            return
        with self._lock:  # stamped under the lock: lines from the agents' threads stay in time order
            line = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                               "run_id": self.run_id, "agent": agent, "step": step, "event": event,
                               "seconds": round(time.monotonic() - self.started, 3), "detail": detail})
            self.sink.write(line + "\n")
            self.sink.flush()

    def step_reporter(self, agent: str | None = None) -> StepEvents:
        """What run_steps calls for each step's start, end or failure."""
        def report(step: str, event: str, detail: str | None = None) -> None:
            self.emit(event, agent=agent, step=step, detail=detail)

        return report


def check_destination(path: str | None, json_output: bool) -> None:
    if path == "-" and json_output:
        raise InputError("--events - and --json would share stdout: write the events to a file (--events FILE)")


@contextmanager
def stream(path: str | None, run_id: str, **started_detail: str | Sequence[str | None]) -> Iterator[Events]:
    """Events to ``path`` (``-``: stdout) for the block, framed by ``run started`` and ``run finished``."""
    if path is None:
        yield Events()
        return
    sink = sys.stdout if path == "-" else open(Path(path), "w", buffering=1)
    events = Events(sink, run_id)
    events.emit("run started", detail=json.dumps(started_detail) if started_detail else None)
    try:
        yield events
    except BaseException as exc:
        events.emit("run finished", detail=f"failed: {exc or type(exc).__name__}")
        raise
    else:
        events.emit("run finished", detail=events.outcome or "succeeded")
    finally:
        if sink is not sys.stdout:
            sink.close()


def gantt(lines: list[str], title: str = "agents") -> str:
    """A Mermaid gantt chart of each agent's timeline: one bar per stretch between its events."""
    rows = [json.loads(line) for line in lines if line.strip()]
    agents: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("agent") and row["event"] not in ("step started", "step finished", "step failed"):
            agents.setdefault(row["agent"], []).append(row)
    out = ["gantt", f"    title {title}", "    dateFormat x", "    axisFormat %M:%S"]
    start = min((_ms(r) for r in rows), default=0)
    for agent, events in agents.items():
        out.append(f"    section {agent}")
        previous = start
        for row in events:
            now = max(_ms(row), previous + 1)
            label = row["event"].replace(":", " ").replace("#", " ")
            out.append(f"    {label} :{'crit, ' if 'fail' in label else ''}{previous}, {now}")
            previous = now
    return "\n".join(out)


def _ms(row: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(row["time"]).timestamp() * 1000)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m imagekit.events EVENTS.jsonl  (prints a Mermaid gantt chart)")
    print(gantt(Path(sys.argv[1]).read_text().splitlines()))
