"""Hetzner's rate limit, so clients see (and may be refused by) the same ``RateLimit-*`` budget."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Hetzner's model: a bucket of ``limit`` requests per hour, refilled one per second-ish."""

    def __init__(self, limit: int, enforced: bool):
        self.lock = threading.Lock()
        self.configure(limit, enforced)

    def configure(self, limit: int, enforced: bool) -> None:
        with self.lock:
            self.limit, self.enforced = max(1, limit), enforced
            self.tokens = float(self.limit)
            self.stamp = time.monotonic()

    def take(self) -> tuple[bool, int, int]:
        with self.lock:
            t = time.monotonic()
            self.tokens = min(self.limit, self.tokens + (t - self.stamp) * self.limit / 3600)
            self.stamp = t
            ok = self.tokens >= 1 or not self.enforced
            if self.tokens >= 1:
                self.tokens -= 1
            remaining = int(self.tokens)
            reset = int(time.time() + (self.limit - self.tokens) * 3600 / self.limit)
            return ok, remaining, reset
