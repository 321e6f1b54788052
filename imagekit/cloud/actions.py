"""Waiting on API actions: one polling policy for every wait, one poller for many actions.

The first question comes when a quick action may be done, later ones back off to ``MAX_POLL``:
local actions finish in well under a second, snapshots on Hetzner take minutes, and the SDK's
own waiter gives up on those after about two minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from hcloud import APIException, Client
from hcloud.actions import ActionError, BoundAction

from ..errors import CloudError

FIRST_POLL = 0.4  # seconds: an action that has just started is rarely done sooner
MAX_POLL = 5.0


def backoff() -> Iterator[float]:
    delay = FIRST_POLL
    while True:
        yield delay
        delay = min(MAX_POLL, delay * 1.5)


def failure(what: str, action_id: int, error: ActionError | None) -> CloudError:
    message = error.get("message", "action ended in error") if error else "action ended in error"
    return CloudError(f"{what} failed: {message} (action {action_id}, code {error.get('code') if error else None})")


def wait(client: Client, action: BoundAction | int, timeout: float, what: str,
         check: Callable[[], None] = lambda: None) -> None:
    """Wait until the action succeeds; CloudError naming ``what`` when it fails or times out.
    ``check`` runs between polls (it raises to stop waiting: a cancel, an overall deadline)."""
    action_id = action if isinstance(action, int) else action.id
    deadline = time.monotonic() + timeout
    for delay in backoff():
        check()
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        found = client.actions.get_by_id(action_id)
        if found.status == "success":
            return
        if found.status == "error":
            raise failure(what, action_id, found.error)
        if time.monotonic() >= deadline:
            raise CloudError(f"{what} did not finish within {timeout:.0f} s (action {action_id})")


class ActionWatcher:
    """One poller for many actions (a fleet's server creations): one request per round for all.

    Workers ask ``status(id)`` as often as they like; only the poller talks to the API, so ten
    agents cost the API no more polling than one does.
    """

    def __init__(self, client: Client):
        self._client = client
        self._status: dict[int, tuple[str, ActionError | None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="action-watcher", daemon=True)
        self._thread.start()

    def watch(self, action_id: int) -> None:
        with self._lock:
            self._status.setdefault(action_id, ("running", None))
        self._wake.set()

    def status(self, action_id: int) -> tuple[str, ActionError | None]:
        """(``running`` | ``success`` | ``error``, the action's error object or None)."""
        with self._lock:
            return self._status.get(action_id, ("running", None))

    def wait(self, action_id: int, what: str, check: Callable[[], None]) -> None:
        """Like ``wait()`` for one of many watched actions; ``check`` enforces the caller's deadline."""
        self.watch(action_id)
        while True:
            status, error = self.status(action_id)
            if status == "success":
                return
            if status == "error":
                raise failure(what, action_id, error)
            check()
            time.sleep(0.05)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _loop(self) -> None:
        delays = backoff()
        while not self._closed:
            if self._wake.is_set():  # a new action: ask once it may be done, then back off
                self._wake.clear()
                delays = backoff()
            delay = next(delays)
            with self._lock:
                pending = sorted(i for i, (st, _) in self._status.items() if st == "running")
            if not pending:
                self._wake.wait(5)
                continue
            time.sleep(delay)
            for start in range(0, len(pending), 50):
                try:
                    resp = self._client.request("GET", "/actions", params={"id": pending[start:start + 50],
                                                                           "per_page": 50})
                except (APIException, OSError):  # transient trouble: the next round asks again
                    continue
                with self._lock:
                    for a in resp.get("actions", []):
                        self._status[a["id"]] = (a["status"], a.get("error"))
