"""Live events: framing, the step reports of a pipeline, and the gantt chart the provision workflow draws.
Real runs' events are checked in tests/imagekit/e2e (test_build_snapshot.py, test_provision.py)."""

from __future__ import annotations

import json

import pytest

from imagekit import events
from imagekit.errors import InputError
from imagekit.pipeline import StepFailed, run_steps


class Step:
    def __init__(self, name, fail=False):
        self.name, self.fail = name, fail

    def run(self, state):
        if self.fail:
            raise RuntimeError("broken on purpose")

    def cleanup(self, state):
        pass


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_is_framed_and_its_steps_reported(tmp_path):
    out = tmp_path / "e.jsonl"
    with events.stream(str(out), "run-1", command="test") as ev:
        run_steps([Step("one"), Step("two")], type("S", (), {})(), lambda m: None, ev.step_reporter())
        ev.emit("milestone", agent="a-1", detail="halfway")
    rows = read(out)
    assert [(r["event"], r["step"], r["agent"]) for r in rows] == [
        ("run started", None, None), ("step started", "one", None), ("step finished", "one", None),
        ("step started", "two", None), ("step finished", "two", None), ("milestone", None, "a-1"),
        ("run finished", None, None)]
    assert json.loads(rows[0]["detail"]) == {"command": "test"} and rows[-1]["detail"] == "succeeded"
    assert {r["run_id"] for r in rows} == {"run-1"}


def test_a_failing_run_ends_with_its_failure(tmp_path):
    out = tmp_path / "e.jsonl"
    with pytest.raises(StepFailed):
        with events.stream(str(out), "run-2") as ev:
            run_steps([Step("one"), Step("bad", fail=True)], type("S", (), {})(), lambda m: None, ev.step_reporter())
    rows = read(out)
    assert [r["event"] for r in rows][-3:] == ["step started", "step failed", "run finished"]
    assert "broken on purpose" in rows[-2]["detail"]
    assert rows[-1]["detail"].startswith("failed: step 'bad' failed: broken on purpose")


def test_stdout_cannot_hold_both_the_events_and_the_json():
    with pytest.raises(InputError, match="share stdout"):
        events.check_destination("-", json_output=True)
    events.check_destination("-", json_output=False)
    events.check_destination("e.jsonl", json_output=True)


def test_the_gantt_chart_draws_each_agents_stretches():
    lines = [json.dumps({"time": t, "run_id": "r", "agent": a, "step": None, "event": e, "seconds": 0, "detail": None})
             for t, a, e in [("2026-01-01T00:00:00.000+00:00", None, "run started"),
                             ("2026-01-01T00:00:01.000+00:00", "a-1", "created"),
                             ("2026-01-01T00:00:03.500+00:00", "a-1", "ready"),
                             ("2026-01-01T00:00:02.000+00:00", "b-2", "failed")]]
    chart = events.gantt(lines)
    start = 1767225600000
    assert chart.splitlines() == [
        "gantt", "    title agents", "    dateFormat x", "    axisFormat %M:%S",
        "    section a-1", f"    created :{start}, {start + 1000}", f"    ready :{start + 1000}, {start + 3500}",
        "    section b-2", f"    failed :crit, {start}, {start + 2000}"]
