"""The bench's Markdown table carries the new figures (boot CPU, fleet ÷ bare fleet, build ÷ bare build, pool)."""

from __future__ import annotations

from imagekit.bench.table import TARGETS, markdown


def _result() -> dict:
    return {
        "measured_at": "2026-12-04T15:00:00+00:00", "runs": 1, "targets": TARGETS,
        "machine": {"cpus": 2, "cpu": "x", "memory_gib": 23, "kernel": "k", "guests": "nspawn"},
        "snapshot_seconds": 4.5, "fallback_seconds": 50, "fallback_over_snapshot": 11.1, "floor_seconds": 3.5,
        "provision_over_floor": 1.29, "api_requests_per_agent": 8, "api_requests_per_agent_in_fleet": 1.8,
        "api_requests_per_build": 22, "one_agent_wall_seconds": 4.6, "fleet_size": 10, "fleet_wall_seconds": 30,
        "floor_fleet_wall_seconds": 25, "fleet_over_floor": 1.2, "boot_cpu_seconds": 4.8,
        "fleet_boot_cpu_seconds": 5.1, "build_seconds": 80, "floor_build_seconds": 85, "build_over_floor_build": 0.94,
        "floor_build_step_seconds": {}, "build_step_seconds": {"playbooks": 59}, "incremental_build_seconds": 30,
        "incremental_over_full": 0.38, "lynis_hardening_index": 81, "agent_unit_exposure": 1.1,
        "snapshot_size_bytes": 640_000_000, "snapshot_size_before_clean_bytes": 1_000_000_000,
        "snapshot_events_seconds": {"ready": 4.5}, "fallback_events_seconds": {"ready": 50}, "lynis_suggestions": [],
        "pool_claim_seconds": 1.4, "pool_speedup": 3.2, "container_start_seconds": 0.7, "docker_load_seconds": 0.3,
        "recycle_claim_seconds": 1.3,
        "ipv6_only_seconds": 4.7, "ipv6_only_over_dual_stack": 1.04,
        "arch_build_seconds": {"x86": 60.5, "arm": 400.0}, "arm_build_over_x86_build": 6.61,
    }


def test_table_has_the_fleet_boot_and_bare_build_rows():
    table = markdown(_result())
    assert "10 agents ÷ 10 bare clones at once (wall) | 1.2× (30 s / 25 s) | <= 1.2" in table
    assert "CPU-seconds a clone spends until ready (median; in the fleet) | 4.8 / 5.1 | <= 3" in table
    assert "build-snapshot ÷ bare build | 0.94× | <= 1.0" in table
    assert "640 MB" in table
    assert "warm pool: claim → ready | 1.4 s | <= 1.5" in table
    assert "cold snapshot ÷ pool claim | 3.2× | >= 3" in table
    assert "recycled pool host: claim → ready | 1.3 s | " in table
    assert "IPv6-only ÷ dual-stack agent, snapshot mode (medians) | 1.04× (4.7 s) | <= 1.1" in table
    assert ("arm build ÷ x86 build, profile nodeagent at once (--arch x86,arm; arm under qemu-user) | 6.61× "
            "(400.0 s / 60.5 s) |") in table


def test_targets_replace_ten_over_one_with_fleet_over_floor():
    assert "parallel_10_over_1" not in TARGETS
    assert {"fleet_over_floor", "boot_cpu_seconds", "build_over_floor_build", "pool_claim_seconds",
            "pool_speedup"} <= set(TARGETS)
