"""Time to live: ``--ttl DURATION`` (90m, 4h, 2d, 1h30m) on agents, pool hosts and jobs puts ``expires-at=<unix
time>`` in the server's labels at its creation (an absolute time: a label value Hetzner accepts, kept as it is by
roll and update, which carry an agent's labels). ``gc`` deletes what has expired (fleet/expiry.py); ``status``
shows when. A bill then cannot run away when an operator forgets a fleet."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Protocol

from .errors import InputError

LABEL = "expires-at"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LONGEST = 366 * 86400  # a year: longer is no bound on a bill
_PART = re.compile(r"(\d+)([smhd])")


class Labelled(Protocol):
    @property
    def labels(self) -> dict[str, str] | None: ...


def parse(value: str | None, option: str = "--ttl") -> float | None:
    """A duration such as 90m, 4h, 2d or 1h30m in seconds; None when not given."""
    if value is None or value == "":
        return None
    text = value.strip().lower()
    parts = _PART.findall(text)
    seconds = sum(int(n) * UNITS[unit] for n, unit in parts)
    if not parts or "".join(n + u for n, u in parts) != text or not 0 < seconds <= LONGEST:
        raise InputError(f"{option} {value!r}: give a duration above 0 and at most 366d, as a number and a unit "
                         "(s, m, h, d), e.g. 90m, 4h, 2d or 1h30m")
    return float(seconds)


def label(seconds: float | None, now: float | None = None) -> dict[str, str]:
    """The label for a server made now that lives ``seconds``; nothing without a TTL."""
    if seconds is None:
        return {}
    return {LABEL: str(int((time.time() if now is None else now) + seconds))}


def expires(resource: Labelled) -> float | None:
    """When it expires; None without a TTL (or a label that is not a unix time: never deleted on a guess)."""
    value = (resource.labels or {}).get(LABEL, "")
    return float(value) if value.isdigit() else None


def expired(resource: Labelled, grace: float = 0.0, now: float | None = None) -> bool:
    ends = expires(resource)
    return ends is not None and (time.time() if now is None else now) > ends + grace


def shown(resource: Labelled) -> str | None:
    """Its expiry as an ISO time (UTC), for status and gc's lines."""
    ends = expires(resource)
    if ends is None:
        return None
    return datetime.fromtimestamp(ends, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
