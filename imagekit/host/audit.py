"""A host's hardening as numbers: lynis's hardening index and what it still suggests, and the
agent unit's exposure (``systemd-analyze security``). Used by ``invoke bench`` and the tests."""

from __future__ import annotations

from dataclasses import dataclass

import paramiko

from ..errors import HostError
from .probe import sh

LYNIS_TARGET = 80  # lynis's hardening index a ready agent host reaches (62 before the image was hardened)
EXPOSURE_LIMIT = 2.0  # `systemd-analyze security` of the agent's unit (8.3 before it was sandboxed)
LYNIS = ("export DEBIAN_FRONTEND=noninteractive; command -v lynis >/dev/null || "
         "{ apt-get -q update && apt-get -q -y install lynis; } >/dev/null")


@dataclass(frozen=True)
class Audit:
    lynis_index: int
    suggestions: list[str]  # "TEST-ID: text (detail)", as lynis reports them
    unit_exposure: float


def audit(conn: paramiko.SSHClient, unit: str = "openclaw-agent") -> Audit:
    """Install lynis if it is missing (the host changes: audit hosts that go away), then audit."""
    code, out = sh(conn, f"{LYNIS} && lynis audit system --quick --no-colors >/dev/null 2>&1; "
                         "cat /var/log/lynis-report.dat", timeout=900)
    report = [line.split("=", 1) for line in out.splitlines() if "=" in line]
    index = next((v for k, v in report if k == "hardening_index"), None)
    if code != 0 or index is None:
        raise HostError(f"lynis did not produce a report: {out[-800:]}")
    suggestions = [_suggestion(v) for k, v in report if k == "suggestion[]"]
    _, analysis = sh(conn, f"systemd-analyze security --no-pager {unit}")
    return Audit(lynis_index=int(index), suggestions=suggestions, unit_exposure=unit_exposure(analysis, unit))


def unit_exposure(analysis: str, unit: str) -> float:
    """The overall exposure from ``systemd-analyze security UNIT``'s last line ("…UNIT.service: 1.1 OK")."""
    return float(analysis.rsplit(f"{unit}.service:", 1)[1].split()[0])


def _suggestion(value: str) -> str:
    test, text, detail, *_ = [*value.split("|"), "-", "-"]
    return f"{test}: {text}" + (f" ({detail})" if detail not in ("", "-") else "")
