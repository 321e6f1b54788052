"""Soak: 10 provision → deprovision cycles and a build (grown from the session's snapshot) back to back, with
transient API faults on, end with no failure, nothing left behind and the API process's memory flat. Slow (a few
minutes); CI runs it with the rest of the suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from operator_cli import invoke

from localcloud.paths import layout

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CYCLES, BUILDS = 10, 1  # each cycle costs the suite ~8 s (its 45-minute budget); 15 showed nothing 10 do not
# Transient trouble the SDK retries (rate limit, conflict, bad gateway, gateway timeout) and slow actions.
FAULTS = [{"path": "^/v1/", "code": code, "rate": 0.02} for code in ("rate_limit_exceeded", "conflict")] + \
    [{"path": "^/v1/", "status": status, "code": name, "rate": 0.02} for status, name in ((502, "bad_gateway"),
                                                                                          (504, "timeout"))] + \
    [{"action": "*", "rate": 0.3, "delay": 1, "fail": False}]
MEMORY_GROWTH_LIMIT = 48 * 1024 * 1024  # bytes the API process may grow by from the first cycle to the last


def api_rss() -> int:
    pid = int(layout().pid_file.read_text())
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_soak(snapshot, profile_firewall, cloud_endpoint, cloud_unchanged, record_property):
    failures, rss = [], []
    cloud_endpoint.admin("PUT", "/_admin/faults", FAULTS)
    try:
        for i in range(CYCLES):
            made = invoke("provision", "--agent-id", f"soak-{i}", "--snapshot", str(snapshot), "--json", timeout=600)
            gone = invoke("deprovision", "--agent-id", f"soak-{i}", timeout=600)
            if made.returncode or gone.returncode:
                failures.append((f"cycle {i}", (made.stderr + gone.stderr)[-800:]))
            rss.append(api_rss())
        for i in range(BUILDS):
            # grown (--from): the same API calls as a full build, in half the time
            build = invoke("build-snapshot", "--json", "--force", "--from", str(snapshot), timeout=1800)
            if build.returncode:
                failures.append((f"build {i}", build.stderr[-800:]))
            else:
                cloud_unchanged.images.get_by_id(json.loads(build.stdout)["snapshot_id"]).delete()
            rss.append(api_rss())
        fired = sum(r["fired"] for r in cloud_endpoint.admin("GET", "/_admin/faults")["faults"])
    finally:
        cloud_endpoint.admin("DELETE", "/_admin/faults")
    growth = rss[-1] - rss[0]
    mib = [round(r / 2**20, 1) for r in rss]
    record_property("soak", {"cycles": CYCLES, "builds": BUILDS, "faults_fired": fired, "failures": len(failures),
                             "api_rss_first_mib": mib[0], "api_rss_last_mib": mib[-1], "api_rss_max_mib": max(mib)})
    print(f"soak: {CYCLES} cycles + {BUILDS} builds, {fired} faults fired, {len(failures)} failures, API RSS "
          f"{rss[0] / 2**20:.1f} → {rss[-1] / 2**20:.1f} MiB (max {max(rss) / 2**20:.1f})")
    assert failures == []
    assert fired > 0  # the faults really happened
    assert growth < MEMORY_GROWTH_LIMIT, f"the API process grew by {growth / 2**20:.1f} MiB"
