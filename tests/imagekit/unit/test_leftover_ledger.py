"""A cleanup that fails is never silent: the pipeline records what is left (with the command that removes it) in
the command's ledger, says so live (a progress line, a `cleanup failed` event) and goes on unwinding; the task's
wrapper prints a warning line per leftover, carries them in its JSON result and exits 125. Failed deletions on a
real cloud, per command family: tests/imagekit/e2e/test_leftovers.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from imagekit import command, leftovers
from imagekit.errors import HostError
from imagekit.leftovers import Leftover, removing
from imagekit.pipeline import StepFailed, run_steps

BUILDER = {"managed-by": "imagekit", "role": "builder", "lease-until": "1"}  # leased: gc sweeps it too


class Leaking:
    """A step whose cleanup cannot delete its server."""

    name = "builder server"

    def __init__(self, labels: dict[str, str]):
        self.labels = labels

    def run(self, state) -> None:
        pass

    def cleanup(self, state) -> None:
        with removing("server", 42, "imagekit-build-x", "hcloud server delete 42", self.labels):
            raise RuntimeError("the API refused")


class Later:
    name = "later"

    def __init__(self, log: list[str]):
        self.log = log

    def run(self, state) -> None:
        raise HostError("boom")

    def cleanup(self, state) -> None:
        self.log.append("cleanup later")


def test_a_failed_cleanup_is_a_leftover_a_line_and_an_event_and_the_others_still_run():
    log, lines, events = [], [], []
    with leftovers.ledger() as ledger, pytest.raises(StepFailed):
        run_steps([Leaking(BUILDER), Later(log)], SimpleNamespace(), progress=lines.append,
                  events=lambda step, event, detail=None: events.append((step, event, detail)))
    [left] = ledger.items
    assert left.as_dict() == {"kind": "server", "id": 42, "name": "imagekit-build-x", "error": "the API refused",
                              "remove": "hcloud server delete 42"}
    assert left.warning() == ("warning: server 42 (imagekit-build-x) could not be deleted: the API refused; delete it "
                              "with `hcloud server delete 42` or `invoke gc`")
    assert log == ["cleanup later"]
    assert any("cleanup of 'builder server' failed: server 42" in line for line in lines)
    assert ("builder server", "cleanup failed", left.warning().removeprefix("warning: ")) in events


def test_gc_is_offered_only_for_what_it_sweeps():
    with leftovers.ledger() as ledger:
        run_steps([Leaking({"managed-by": "imagekit", "role": "roundtrip"})], SimpleNamespace(), lambda line: None)
    [left] = ledger.items
    assert left.warning().endswith("delete it with `hcloud server delete 42`")


def test_a_cleanup_failing_otherwise_is_a_leftover_too():
    class Broken(Later):
        name = "snapshot"

        def run(self, state) -> None:
            pass

        def cleanup(self, state) -> None:
            raise OSError("disk full")

    with leftovers.ledger() as ledger:
        run_steps([Broken([])], SimpleNamespace(), lambda line: None)
    [left] = ledger.items
    assert left.warning() == ("warning: what step 'snapshot' made could not be deleted: disk full; delete it with "
                              "`invoke gc`")


@pytest.mark.parametrize("fails", [False, True], ids=["succeeded", "failed"])
def test_a_task_that_left_something_warns_carries_it_and_exits_125(clean_settings, capsys, fails):
    left = Leftover("server", 42, "imagekit-job-x", "the API refused", "hcloud server delete 42", gc=True)

    def action(_):
        leftovers.record(left)
        if fails:
            raise HostError("the command failed")
        return {"exit_code": 0}

    with pytest.raises(SystemExit) as exit_:
        command.run("run", action, json=True, target=False)
    assert exit_.value.code == leftovers.EXIT_LEFTOVERS == 125
    out, err = capsys.readouterr()
    assert json.loads(out)["leftovers"] == [left.as_dict()]
    assert err.strip().splitlines()[-1] == left.warning()
    assert ("error: run: the command failed" in err) is fails


def test_a_task_that_left_nothing_carries_an_empty_list_and_exits_as_before(clean_settings, capsys):
    assert command.run("run", lambda _: {"exit_code": 0}, json=True, target=False)["leftovers"] == []
    assert json.loads(capsys.readouterr().out)["leftovers"] == []
