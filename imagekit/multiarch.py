"""``build-snapshot --arch x86,arm``: one builder per architecture, in parallel. Each architecture's pipeline runs
whole with its own cleanups; when one fails (or on Ctrl-C) the others are stopped and the snapshots they made are
deleted, so that the command delivers a snapshot of every architecture asked for or none, and its error names the
architecture that failed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from . import leftovers
from .errors import ImagekitError, InputError
from .leftovers import LeftoverError
from .pipeline import in_workers, sigterm_interrupts


class Build(Protocol):
    """What this module needs of a build (imagekit.build.BuildJob)."""

    tag: str | None
    cancel: threading.Event


def builders(arch: Sequence[str], server_type: str, arm_server_type: str) -> list[tuple[str | None, str]]:
    """(architecture, builder's server type) per build; without ``--arch`` one build on ``server_type``, of its
    architecture (what build-snapshot did before it built several)."""
    if not arch:
        return [(None, server_type)]
    return [(a, arm_server_type if a == "arm" else server_type) for a in arch]


_SAYING = threading.Lock()  # one line at a time: print() writes a line and its newline apart


def prefixed(progress: Callable[[str], None], tag: str | None) -> Callable[[str], None]:
    def say(line: str) -> None:
        with _SAYING:
            progress(f"[{tag}] {line}")

    return say


def check_names(descriptions: list[str]) -> None:
    if len(set(descriptions)) < len(descriptions):
        raise InputError(f"--name gives the architectures' snapshots one name ({descriptions[0]!r}): put {{arch}} or "
                         "{build_id} in it")


def in_parallel(jobs: Sequence[Build], deliver: Callable[[Any], dict[str, Any]], discard: Callable[[Any], None],
                progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """``deliver(job)`` for each job in its own thread; the results in the jobs' order. ``discard(job)`` deletes what
    a finished job made, when another failed."""
    cancel = threading.Event()
    failures: list[tuple[str | None, Exception]] = []  # in the order they happened: the first is the cause

    def work(job: Build) -> dict[str, Any] | None:
        try:
            return deliver(job)
        except Exception as exc:
            failures.append((job.tag, exc))
            cancel.set()
            return None

    for job in jobs:
        job.cancel = cancel
    try:
        with sigterm_interrupts():
            results = in_workers(work, list(jobs), workers=len(jobs), cancel=cancel, name="build",
                                 interrupted=lambda: progress("interrupted: each architecture's build is cleaning up "
                                                              "what it created"))
    except BaseException:
        _discard(jobs, discard, progress)
        raise
    if failures:
        _discard(jobs, discard, progress)
        tag, cause = failures[0]
        others = [job.tag for job in jobs if job.tag != tag]
        raise ImagekitError(f"the {tag} build failed: {cause}; the {' and '.join(map(str, others))} build was "
                            "stopped and what it made deleted: no snapshot was delivered") from cause
    return [r for r in results if r is not None]


def _discard(jobs: Sequence[Build], discard: Callable[[Any], None], progress: Callable[[str], None]) -> None:
    for job in jobs:
        try:
            discard(job)
        except LeftoverError as exc:
            leftovers.record(exc.leftover)
            progress(f"!!  [{job.tag}] {exc.leftover.warning().removeprefix('warning: ')}")
