"""The bench's targets and its Markdown table (the JSON's keys are the interface; this is how they read)."""

from __future__ import annotations

from typing import Any

from ..host.audit import EXPOSURE_LIMIT, LYNIS_TARGET

TARGETS = {"fallback_over_snapshot": ">= 10", "provision_over_floor": "<= 1.15", "api_requests_per_agent": "<= 9",
           "api_requests_per_build": "<= 30", "fleet_over_floor": "<= 1.2",
           "incremental_over_full": "<= 0.4", "boot_cpu_seconds": "<= 3", "build_over_floor_build": "<= 1.0",
           "snapshot_size_bytes": "<= 650000000",
           "pool_claim_seconds": "<= 1.5", "pool_speedup": ">= 3", "ipv6_only_over_dual_stack": "<= 1.1",
           "lynis_hardening_index": f">= {LYNIS_TARGET}", "agent_unit_exposure": f"<= {EXPOSURE_LIMIT}"}


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    rows = [
        ("snapshot mode: seconds to ready (median)", f"{r['snapshot_seconds']} s", ""),
        ("fallback mode: seconds to ready", f"{r['fallback_seconds']} s", ""),
        ("warm pool: claim → ready", f"{r['pool_claim_seconds']} s", TARGETS["pool_claim_seconds"]),
        ("cold snapshot ÷ pool claim", f"{r['pool_speedup']}×", TARGETS["pool_speedup"]),
        ("recycled pool host: claim → ready", f"{r['recycle_claim_seconds']} s", ""),
        ("fallback ÷ snapshot", f"{r['fallback_over_snapshot']}×", TARGETS["fallback_over_snapshot"]),
        ("IPv6-only ÷ dual-stack agent, snapshot mode (medians)",
         f"{r['ipv6_only_over_dual_stack']}× ({r['ipv6_only_seconds']} s)", TARGETS["ipv6_only_over_dual_stack"]),
        ("floor: create → SSH login, bare SDK (median)", f"{r['floor_seconds']} s", ""),
        ("provision ÷ floor", f"{r['provision_over_floor']}×", TARGETS["provision_over_floor"]),
        ("API requests per agent (one agent)", f"{r['api_requests_per_agent']}", TARGETS["api_requests_per_agent"]),
        (f"API requests per agent ({r['fleet_size']} at once)", f"{r['api_requests_per_agent_in_fleet']}", ""),
        ("API requests per build", f"{r['api_requests_per_build']}", TARGETS["api_requests_per_build"]),
        (f"wall time, 1 agent / {r['fleet_size']} at once",
         f"{r['one_agent_wall_seconds']} s / {r['fleet_wall_seconds']} s", ""),
        (f"{r['fleet_size']} agents ÷ {r['fleet_size']} bare clones at once (wall)",
         f"{r['fleet_over_floor']}× ({r['fleet_wall_seconds']} s / {r['floor_fleet_wall_seconds']} s)",
         TARGETS["fleet_over_floor"]),
        ("CPU-seconds a clone spends until ready (median; in the fleet)",
         f"{r['boot_cpu_seconds']} / {r['fleet_boot_cpu_seconds']}", TARGETS["boot_cpu_seconds"]),
        ("build-snapshot wall time", f"{r['build_seconds']} s", ""),
        ("bare build (plain apt-get install, snapshot; no checks, no cleaning)", f"{r['floor_build_seconds']} s", ""),
        ("build-snapshot ÷ bare build", f"{r['build_over_floor_build']}×", TARGETS["build_over_floor_build"]),
        ("build grown from it (--from) ÷ full build", f"{r['incremental_over_full']}× "
         f"({r['incremental_build_seconds']} s)", TARGETS["incremental_over_full"]),
        ("lynis hardening index, ready agent host", f"{r['lynis_hardening_index']}", TARGETS["lynis_hardening_index"]),
        ("container of a baked image: start / docker load of the same archive at boot",
         f"{r['container_start_seconds']} s / {r['docker_load_seconds']} s", ""),
        ("systemd-analyze security openclaw-agent", f"{r['agent_unit_exposure']}", TARGETS["agent_unit_exposure"]),
        ("arm build ÷ x86 build, profile nodeagent at once (--arch x86,arm; arm under qemu-user)",
         f"{r['arm_build_over_x86_build']}× ({r['arch_build_seconds']['arm']} s / {r['arch_build_seconds']['x86']} s)",
         ""),
        ("snapshot size before / after cleaning",
         f"{r['snapshot_size_before_clean_bytes'] / 1e6:.0f} MB / {r['snapshot_size_bytes'] / 1e6:.0f} MB",
         "<= 650 MB after"),
    ]
    lines = [f"# imagekit bench ({r['measured_at']})", "",
             f"{m['cpus']} × {m['cpu']}, {m['memory_gib']} GiB, kernel {m['kernel']}, {m['guests']}; "
             f"medians of {r['runs']} run(s) where marked.", "",
             "| figure | value | target |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows), "",
             "| build step | seconds |", "|---|---|", *(f"| {k} | {v} |" for k, v in r["build_step_seconds"].items()),
             "", "| provisioning event | snapshot mode (s) | fallback mode (s) |", "|---|---|---|",
             *(f"| {k} | {r['snapshot_events_seconds'].get(k, '')} | {v} |"
               for k, v in r["fallback_events_seconds"].items()), "",
             "lynis's remaining suggestions on a ready agent host:", "",
             *(f"- {s}" for s in r["lynis_suggestions"]), ""]
    return "\n".join(lines)
