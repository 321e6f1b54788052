import os
import signal
from types import SimpleNamespace

import pytest

from imagekit.pipeline import StepFailed, run_steps


class Rec:
    def __init__(self, name, log, fail=None):
        self.name, self.log, self.fail = name, log, fail

    def run(self, state):
        self.log.append(f"run {self.name}")
        if self.fail:
            raise self.fail

    def cleanup(self, state):
        self.log.append(f"cleanup {self.name}")


def test_cleanups_run_in_reverse_on_success():
    log = []
    durations = run_steps([Rec("a", log), Rec("b", log)], SimpleNamespace(), progress=lambda m: None)
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
    assert set(durations) == {"a", "b"}


def test_failure_unwinds_started_steps_including_the_failing_one():
    log = []
    state = SimpleNamespace()
    with pytest.raises(StepFailed) as exc:
        run_steps([Rec("a", log), Rec("b", log, RuntimeError("boom")), Rec("c", log)], state, progress=lambda m: None)
    assert exc.value.step == "b" and "boom" in str(exc.value)
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
    assert state.failed is True


class Interrupting(Rec):
    def run(self, state):
        self.log.append(f"run {self.name}")
        if isinstance(self.fail, signal.Signals):
            os.kill(os.getpid(), self.fail)
        raise self.fail


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), signal.SIGTERM, signal.SIGHUP],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_sigterm_and_sighup_unwind(interrupt):
    log = []
    with pytest.raises(StepFailed) as exc:
        run_steps([Rec("a", log), Interrupting("b", log, interrupt), Rec("c", log)], SimpleNamespace(),
                  progress=lambda m: None)
    assert "interrupt" in str(exc.value).lower() or f"terminated ({getattr(interrupt, 'name', '')})" in str(exc.value)
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # the handlers are the run's only


def test_a_failing_cleanup_does_not_stop_the_others():
    log = []

    class BadCleanup(Rec):
        def cleanup(self, state):
            raise RuntimeError("cannot delete")

    messages = []
    run_steps([Rec("a", log), BadCleanup("b", log)], SimpleNamespace(), progress=messages.append)
    assert log == ["run a", "run b", "cleanup a"]
    assert any("cleanup of 'b' failed" in m for m in messages)


def test_a_set_cancel_stops_before_the_next_step_and_unwinds_what_ran():
    import threading

    log, cancel = [], threading.Event()

    class Cancelling(Rec):
        def run(self, state):
            super().run(state)
            cancel.set()  # another worker failed meanwhile

    with pytest.raises(StepFailed) as exc:
        run_steps([Rec("a", log), Cancelling("b", log), Rec("c", log)], SimpleNamespace(), progress=lambda m: None,
                  cancel=cancel)
    assert exc.value.step == "c" and "cancelled" in str(exc.value)
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
