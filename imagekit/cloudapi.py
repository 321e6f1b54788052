"""The one thin layer between imagekit and the hcloud SDK.

It knows our labels, sets an HTTP timeout and a polling backoff suited to slow actions
(the SDK's defaults give up on snapshots after ~2 minutes), and turns API errors into
messages an operator can act on.
"""

from __future__ import annotations

import threading
import time

from hcloud import APIException, Client
from hcloud.actions import ActionFailedException, ActionTimeoutException, BoundAction

from .pipeline import StepFailed
from .pipeline import run_steps as _run_steps
from .target import Target

MANAGED = {"managed-by": "imagekit"}
HTTP_TIMEOUT = 30


class CloudError(RuntimeError):
    """An error an operator can act on; the message says what happened and what to do."""


def connect(target: Target) -> Client:
    # Poll fast at first (local actions take well under a second), then back off to 5 s.
    return Client(token=target.token, api_endpoint=target.endpoint, application_name="imagekit",
                  timeout=HTTP_TIMEOUT, poll_interval=lambda retries: min(5.0, 0.2 * 1.5**retries),
                  poll_max_retries=10_000)


def labels(**extra: str) -> dict[str, str]:
    return {**MANAGED, **extra}


def selector(**extra: str) -> str:
    return ",".join(f"{k}={v}" for k, v in labels(**extra).items())


def wait(action: BoundAction, timeout: float, what: str) -> None:
    """Wait for an action with a deadline; failures name what was being done."""
    deadline = time.monotonic() + timeout
    try:
        _wait(action, deadline)
    except ActionTimeoutException:
        raise CloudError(f"{what} did not finish within {timeout:.0f} s (action {action.id})") from None
    except ActionFailedException as exc:
        err = exc.action.error or {}
        raise CloudError(f"{what} failed: {err.get('message', 'action ended in error')} "
                         f"(action {exc.action.id}, code {err.get('code')})") from None


def _wait(action: BoundAction, deadline: float) -> None:
    delay = 0.1
    while True:
        action.reload()
        if action.status == "error":
            raise ActionFailedException(action=action)
        if action.status == "success":
            return
        if time.monotonic() > deadline:
            raise ActionTimeoutException(action=action)
        time.sleep(delay)
        delay = min(5.0, delay * 1.5)  # fast for quick actions, gentle on the API for snapshots


def explain(exc: APIException, client: Client | None = None) -> str:
    """Turn an API error into advice."""
    code, message = exc.code, exc.message
    if code == "unauthorized":
        return "the API token was rejected (401): check HCLOUD_TOKEN / HETZNER_API_TOKEN"
    if code == "resource_unavailable" and client is not None:
        names = ", ".join(loc.name for loc in client.locations.get_all())
        return f"{message}: try another location with --location (locations: {names})"
    if code == "rate_limit_exceeded":
        return f"{message}: the API rate limit was hit; wait a minute and retry"
    if code == "invalid_input" and exc.details:
        fields = "; ".join(f"{f.get('name')}: {', '.join(f.get('messages') or [])}"
                           for f in exc.details.get("fields", []))
        return f"invalid input ({fields or message})"
    return f"{message} (API error {code})"


def run_steps(client: Client, steps: list, state, progress=lambda line: None) -> dict[str, float]:
    """``pipeline.run_steps``, with an API error re-worded into advice, still naming the step."""
    try:
        return _run_steps(steps, state, progress)
    except StepFailed as exc:
        if isinstance(exc.cause, APIException):
            raise StepFailed(exc.step, CloudError(explain(exc.cause, client))) from exc
        raise


class ActionWatcher:
    """One poller for many actions (a fleet's server creations): one request per round for all of them.

    Workers ask ``status(id)`` as often as they like; only the poller talks to the API, so a
    fleet of ten costs the API no more polling than one agent does.
    """

    def __init__(self, client: Client, interval: float = 0.4):
        self._client = client
        self._interval = interval
        self._status: dict[int, tuple[str, dict | None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="action-watcher", daemon=True)
        self._thread.start()

    def watch(self, action_id: int) -> None:
        with self._lock:
            self._status.setdefault(action_id, ("running", None))
        self._wake.set()

    def status(self, action_id: int) -> tuple[str, dict | None]:
        """(``running`` | ``success`` | ``error``, the action's error object or None)."""
        with self._lock:
            return self._status.get(action_id, ("running", None))

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                pending = sorted(i for i, (st, _) in self._status.items() if st == "running")
            if not pending:
                self._wake.wait(5)
                self._wake.clear()
                time.sleep(self._interval)  # an action just started is not done yet: ask once it may be
                continue
            for start in range(0, len(pending), 50):
                try:
                    resp = self._client.request("GET", "/actions", params={"id": pending[start:start + 50],
                                                                           "per_page": 50})
                except Exception:  # transient API trouble: the next round asks again
                    continue
                with self._lock:
                    for a in resp.get("actions", []):
                        self._status[a["id"]] = (a["status"], a.get("error"))
            time.sleep(self._interval)


def api_requests(target: Target) -> int | None:
    """How many API requests the local cloud has served (its request log); None on Hetzner."""
    if not target.local:
        return None
    from localcloud import client as control

    ep = control.current()
    return ep.admin("GET", "/_admin/requests?since=1000000000")["total"] if ep else None
