"""Fault injection: make chosen requests fail or lag, make chosen actions end in ``error``.

Rules are set through ``PUT /_admin/faults`` (or the ``faults.json`` file at start) and
are matched in order. A request rule::

    {"method": "POST", "path": "^/v1/servers$", "code": "rate_limit_exceeded",
     "rate": 0.2, "times": null, "delay": 0}

fails a matching request (``code`` set) and/or delays it (``delay`` seconds). An action
rule ``{"action": "create_image", "rate": 1, "times": 1, "delay": 0, "fail": true}`` makes that
command's action run ``delay`` seconds longer, then end in ``error`` unless ``fail`` is false.
A request rule with ``"status": 502`` or ``504`` answers like a failing gateway (no JSON).
``times`` limits how often a rule fires; ``rate`` is the probability per match.
"""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path

from ..errors import STATUS, APIError

_HTTP_ONLY = {502: "bad gateway", 504: "gateway timeout"}


class Faults:
    def __init__(self, path: Path | None = None):
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.path = path
        if path and path.exists():
            self.set(json.loads(path.read_text()))

    def set(self, rules: list[dict]) -> list[dict]:
        for r in rules:
            if not isinstance(r, dict) or not ("path" in r or "action" in r):
                raise APIError("invalid_input", "each fault rule needs 'path' (request) or 'action' (action)")
            if "code" in r and r["code"] not in STATUS and r.get("status") not in _HTTP_ONLY:
                raise APIError("invalid_input", f"unknown error code '{r['code']}'")
            re.compile(r.get("path", ""))
        with self.lock:
            self.rules = [dict(r, fired=0) for r in rules]
            if self.path:
                self.path.write_text(json.dumps(rules))
        return self.rules

    def _fire(self, match) -> dict | None:
        with self.lock:
            for rule in self.rules:
                if not match(rule):
                    continue
                if rule.get("times") is not None and rule["fired"] >= rule["times"]:
                    continue
                if random.random() >= float(rule.get("rate", 1.0)):
                    continue
                rule["fired"] += 1
                return rule
        return None

    def for_request(self, method: str, path: str) -> dict | None:
        return self._fire(
            lambda r: "path" in r and r.get("method", "*") in ("*", method) and re.search(r["path"], path)
        )

    def for_action(self, command: str) -> dict | None:
        return self._fire(lambda r: r.get("action") in ("*", command))
