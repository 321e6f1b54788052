"""The operator's alerts: an event (one JSON object) to a command's stdin (``--alert-command``) and/or POSTed to a
URL (``--webhook``). Each delivery runs in a background thread with a timeout, so a slow or hanging receiver never
holds up what raised the event; a failed delivery is reported, not retried. The command gets our environment less
the API token and the other secrets, and the webhook's URL (often a secret itself) is never printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import settings
from .errors import InputError

TIMEOUT = 10  # seconds a delivery may take


class Alerts:
    def __init__(self, command: str | None, webhook: str | None, progress: Callable[[str], None],
                 hide: tuple[str, ...] = ()):
        if webhook is not None and (urlsplit(webhook).scheme not in ("http", "https") or not urlsplit(webhook).netloc):
            raise InputError("--webhook: give an http(s) URL, e.g. https://hooks.example.com/imagekit")
        if command is not None and not command.strip():
            raise InputError("--alert-command: give a command line, e.g. 'mail -s imagekit ops@example.com'")
        self.command, self.webhook, self.progress = command, webhook, progress
        self.env = {k: v for k, v in os.environ.items() if k not in settings.SECRETS and v not in hide}
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="alert")
        self.pending: list[Future[None]] = []

    def __enter__(self) -> Alerts:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def send(self, event: Mapping[str, Any]) -> None:
        """Deliver ``event`` in the background; returns at once."""
        body = json.dumps(event).encode()
        if self.command:
            self.pending.append(self.pool.submit(self._run, self.command, body))
        if self.webhook:
            self.pending.append(self.pool.submit(self._post, self.webhook, body))
        self.pending = [f for f in self.pending if not f.done()]

    def close(self) -> None:
        """Let the deliveries under way finish (each within its timeout)."""
        wait(self.pending)
        self.pool.shutdown()

    def _run(self, command: str, body: bytes) -> None:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=self.env, start_new_session=True)
        try:
            _, err = proc.communicate(body, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started
            proc.communicate()
            self.progress(f"warning: the alert command did not finish within {TIMEOUT} s and was stopped")
            return
        if proc.returncode != 0:
            self.progress(f"warning: the alert command exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")

    def _post(self, webhook: str, body: bytes) -> None:
        import requests

        where = urlsplit(webhook).netloc.rsplit("@", 1)[-1]
        try:
            answer = requests.post(webhook, data=body, timeout=(5, TIMEOUT),
                                   headers={"Content-Type": "application/json", "User-Agent": "imagekit"})
        except requests.RequestException as exc:
            self.progress(f"warning: the webhook at {where} could not be reached ({type(exc).__name__})")
            return
        if answer.status_code >= 300:
            self.progress(f"warning: the webhook at {where} answered HTTP {answer.status_code}")
