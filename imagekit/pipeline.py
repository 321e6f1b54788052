"""Every command that creates something is an ordered list of steps, each with its own cleanup
(Packer's multistep): the one cleanup style of imagekit.

The runner registers a step's cleanup before running it, so a step that created something
and then failed while waiting on it is still cleaned up. Cleanups run in reverse order on
success, failure, Ctrl-C, SIGTERM and SIGHUP (the terminal closed) alike; a step can keep its resource by setting
``state.keep`` (``--keep-on-failure``) or by leaving nothing to clean. A cleanup that fails
does not stop the others: what it left is recorded in the command's ledger (``leftovers``),
said on ``progress`` and reported as a ``cleanup failed`` event.

Pipelines may run in worker threads (one per agent when provisioning a fleet); signals are
handled only by the main thread, which cancels its workers and lets them unwind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Protocol, TypeVar

from hcloud import Client

from . import leftovers
from .cloud.api import explain
from .errors import ImagekitError
from .events import StepEvents
from .leftovers import Leftover, LeftoverError


class State(Protocol):
    """What steps work on: whatever the command's steps share, and whether one of them failed."""

    failed: bool


S = TypeVar("S", bound=State)
S_contra = TypeVar("S_contra", bound=State, contravariant=True)
T = TypeVar("T")
R = TypeVar("R")


class Step(Protocol[S_contra]):
    """A step: ``run(state)``, and, when it makes something, ``cleanup(state)`` (optional: a step that leaves
    nothing behind has none)."""

    @property
    def name(self) -> str: ...

    def run(self, state: S_contra, /) -> None: ...


class StepFailed(ImagekitError):
    """A step failed; the message names it and the cause (API errors worded as advice)."""

    def __init__(self, step: str, cause: BaseException, client: Client | None = None):
        super().__init__(f"step '{step}' failed: {explain(cause, client)}")
        self.step = step
        self.cause = cause


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, treated like Ctrl-C so that cleanups run."""


ENDING = (signal.SIGTERM, signal.SIGHUP)  # what ends a run as Ctrl-C does (a kill, a closed terminal)


def _on_ending(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGHUP:  # the terminal is gone: writing to it would fail, so the cleanups' lines go nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            if os.isatty(fd):
                os.dup2(devnull, fd)
        os.close(devnull)
    raise Interrupted(f"terminated ({signal.Signals(signum).name})")


def _no_events(step: str, event: str, detail: str | None = None, /) -> None:
    pass


def run_steps(steps: list[Step[S]], state: S, progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
              events: StepEvents = _no_events, cancel: threading.Event | None = None) -> dict[str, float]:
    """Run ``steps`` in order; unwind cleanups in reverse; return seconds per step. ``events(step, event,
    detail)`` hears each step start, finish and fail (live events). A set ``cancel`` (a worker's run stopped by
    another's failure) stops the pipeline before its next step, as Ctrl-C does."""
    durations: dict[str, float] = {}
    started: list[Step[S]] = []
    main = threading.current_thread() is threading.main_thread()
    failure: BaseException | None = None
    with sigterm_interrupts(main):
        try:
            for step in steps:
                if cancel is not None and cancel.is_set():
                    failure = StepFailed(step.name, Interrupted("cancelled"))
                    break
                started.append(step)
                progress(f"==> {step.name}")
                events(step.name, "step started")
                t0 = time.monotonic()
                try:
                    step.run(state)
                except KeyboardInterrupt as exc:
                    failure = StepFailed(step.name, exc if str(exc) else Interrupted("interrupted (Ctrl-C)"))
                    break
                except Exception as exc:
                    failure = StepFailed(step.name, exc, getattr(state, "client", None))
                    break
                finally:
                    durations[step.name] = round(time.monotonic() - t0, 2)
                    if failure is not None:
                        events(step.name, "step failed", str(failure))
                progress(f"    {step.name}: {durations[step.name]:.1f} s")
                events(step.name, "step finished", f"{durations[step.name]:.2f} s")
        finally:
            state.failed = failure is not None
            _unwind(started, state, progress, events, main)
    if failure is not None:
        raise failure
    return durations


def _unwind(started: list[Step[S]], state: S, progress: Callable[[str], None], events: StepEvents,
            main: bool) -> None:
    with ignoring_signals(main):  # a second Ctrl-C must not abort the cleanups
        for step in reversed(started):
            if (cleanup := getattr(step, "cleanup", None)) is None:
                continue
            try:
                cleanup(state)
            except LeftoverError as exc:  # keep unwinding; report what could not be cleaned
                left = exc.leftover
            except Exception as exc:
                left = Leftover(f"what step '{step.name}' made", None, "", explain(exc), "invoke gc")
            else:
                continue
            leftovers.record(left)
            progress(f"!!  cleanup of '{step.name}' failed: {left.warning().removeprefix('warning: ')}")
            events(step.name, "cleanup failed", left.warning().removeprefix("warning: "))


@contextlib.contextmanager
def sigterm_interrupts(active: bool = True) -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted inside the block, so cleanups run as for Ctrl-C (main thread only)."""
    if not active:
        yield
        return
    previous = {sig: signal.signal(sig, _on_ending) for sig in ENDING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ignoring_signals(active: bool = True) -> Iterator[None]:
    """Ignore SIGINT, SIGTERM and SIGHUP inside the block (main thread only: others cannot set handlers)."""
    if not active:
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *ENDING)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def in_workers(work: Callable[[T], R], items: list[T], *, workers: int, cancel: threading.Event,
               interrupted: Callable[[], None], name: str) -> list[R]:
    """``work(item)`` for each item in worker threads (a fleet's agents, a run's jobs, a roll's batch); the
    results in the items' order. On Ctrl-C (or SIGTERM, SIGHUP inside ``sigterm_interrupts``) ``cancel`` is set, so
    every worker unwinds its own steps, ``interrupted()`` says so, and all are waited for before it re-raises."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))), thread_name_prefix=name)
    futures = [pool.submit(work, item) for item in items]
    try:
        for fut in futures:
            while not fut.done():
                time.sleep(0.1)  # short sleeps keep Ctrl-C and SIGTERM responsive
    except KeyboardInterrupt:
        cancel.set()
        interrupted()
        with ignoring_signals():
            pool.shutdown(wait=True)
        raise
    finally:
        pool.shutdown(wait=True)
    return [fut.result() for fut in futures]
