"""``invoke bench``: the figures behind imagekit's performance goals, measured on the local cloud.

One run builds a snapshot (and one grown from it with ``--from``, and a bare one: the same packages by one
plain ``apt-get install``, snapshotted without checks or cleaning), then measures provisioning from it
(median of ``runs``; with the CPU-seconds each clone's machine spent until ready; IPv6-only agents alike), the
floor (create a server from the same snapshot, log in over SSH, as a bare loop does; median of ``runs``), one
full-install fallback, ``fleet`` agents at once against ``fleet`` bare clones at once, a hardening audit, a
container of an image baked into the snapshot against loading the same image at boot, a claim of a warm pool
host (and of one recycled into the pool), and an arm build against an x86 one of the same profile (``arch``). It
writes JSON (the
keys are the interface) and a Markdown table beside it, and leaves the cloud as it found it. Figures are ratios
measured in one run: the machines are shared and noisy.

Rooms: ``floor`` (what the figures are measured against), ``hosts`` (the audit and the pool claim),
``table`` (targets and the Markdown table), ``state`` (what a run shares)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..build import BuildOptions, build_snapshot
from ..cloud import api
from ..errors import ImagekitError, InputError
from ..fleet.deprovision import deprovision
from ..pipeline import run_steps
from ..provision import ProvisionOptions, provision
from ..target import Target
from .arch import arm_over_x86
from .floor import floor, floor_build, floor_fleet
from .hosts import bench_image, hardening, pool_claim
from .state import Bench
from .table import TARGETS, markdown


class BenchSnapshot:
    """The snapshot every figure is measured from; it goes at the end, with the profile's firewall if the
    bench made it."""

    name = "snapshot"

    def run(self, b: Bench) -> None:
        b.firewalls_before = {f.id for f in b.client.firewalls.get_all()}
        # Forced: the build is one of the figures, and its snapshot is deleted at the end (never reuse one). It has
        # a small container image baked in (container_start_seconds).
        b.image_archive = bench_image(Path(tempfile.mkdtemp(prefix="imagekit-bench-")))
        b.build = build_snapshot(b.target, BuildOptions(name="imagekit-bench-{build_id}", force=True,
                                                        images=[str(b.image_archive)]), lambda line: None)
        b.snapshot = b.build["snapshot_id"]
        b.incremental = build_snapshot(b.target, BuildOptions(name="imagekit-bench-grown-{build_id}", force=True,
                                                              parent=str(b.snapshot)), lambda line: None)
        b.progress("bench: the bare build (same packages, one plain apt-get install, no checks, no cleaning)")
        b.floor_build = floor_build(b.target, b.client)

    def cleanup(self, b: Bench) -> None:
        if b.image_archive is not None:
            shutil.rmtree(b.image_archive.parent, ignore_errors=True)
        for made in (b.incremental.get("snapshot_id"), b.snapshot):
            if made is not None:
                b.client.images.get_by_id(made).delete()
        for fw in b.client.firewalls.get_all(label_selector=api.selector(role="firewall")):
            if fw.id not in b.firewalls_before:
                fw.delete()


class Measure:
    """Provisioning from the snapshot, the floor, one fallback and a fleet at once; every agent goes at the end."""

    name = "measure"

    def run(self, b: Bench) -> None:
        assert b.snapshot is not None
        singles, many_ids = [f"bench-s{i}" for i in range(b.runs)], [f"bench-p{i}" for i in range(b.fleet_size)]
        singles6 = [f"bench-six{i}" for i in range(b.runs)]
        b.agents = [*singles, *singles6, "bench-fb", *many_ids]
        snap = [_provision(b, [agent], "snapshot") for agent in singles]
        snap6 = [_provision(b, [agent], "snapshot", ipv4=False) for agent in singles6]  # IPv6-only (--no-ipv4)
        floors = [floor(b.client, b.snapshot, i, b.progress) for i in range(b.runs)]
        floor_many = floor_fleet(b.client, b.snapshot, b.fleet_size, b.progress)
        fallback = _provision(b, ["bench-fb"], "fallback")
        many = _provision(b, many_ids, "snapshot")
        s_med = statistics.median(r["agents"][0]["seconds_to_ready"] for r in snap)
        cpu = [r["agents"][0]["cpu_seconds"] for r in snap if r["agents"][0]["cpu_seconds"] is not None]
        build = b.build
        b.figures = {
            "snapshot_seconds": s_med,
            "fallback_seconds": fallback["agents"][0]["seconds_to_ready"],
            "floor_seconds": statistics.median(floors),
            "api_requests_per_agent": statistics.median(r["api_requests"] for r in snap),
            "api_requests_per_agent_in_fleet": round(many["api_requests"] / b.fleet_size, 2),
            "api_requests_per_build": build["api_requests"],
            "one_agent_wall_seconds": statistics.median(r["seconds"] for r in snap),
            "fleet_size": b.fleet_size,
            "fleet_wall_seconds": many["seconds"],
            "floor_fleet_wall_seconds": floor_many,
            "boot_cpu_seconds": statistics.median(cpu) if cpu else None,
            "fleet_boot_cpu_seconds": _median([a["cpu_seconds"] for a in many["agents"]]),
            "build_seconds": build["seconds"],
            "floor_build_seconds": b.floor_build["seconds"],
            "floor_build_step_seconds": b.floor_build["durations"],
            "build_step_seconds": build["durations"],
            "incremental_build_seconds": b.incremental["seconds"],
            "incremental_over_full": round(b.incremental["seconds"] / build["seconds"], 2),
            "snapshot_size_bytes": build["disk_used_after_clean"],
            "snapshot_size_before_clean_bytes": build["disk_used_before_clean"],
            "snapshot_events_seconds": snap[len(snap) // 2]["agents"][0]["events"],
            "fallback_events_seconds": fallback["agents"][0]["events"],
        }
        b.figures["fallback_over_snapshot"] = round(b.figures["fallback_seconds"] / s_med, 2)
        b.figures["ipv6_only_seconds"] = statistics.median(r["agents"][0]["seconds_to_ready"] for r in snap6)
        b.figures["ipv6_only_over_dual_stack"] = round(b.figures["ipv6_only_seconds"] / s_med, 2)
        b.figures["provision_over_floor"] = round(s_med / b.figures["floor_seconds"], 2)
        b.figures["fleet_over_floor"] = round(many["seconds"] / floor_many, 2)
        b.figures["build_over_floor_build"] = round(build["seconds"] / b.floor_build["seconds"], 2)
        b.figures.update(hardening(b))
        b.figures["pool_claim_seconds"], b.figures["recycle_claim_seconds"] = pool_claim(b)
        b.figures["pool_speedup"] = round(s_med / b.figures["pool_claim_seconds"], 2)
        b.figures.update(arm_over_x86(b))

    def cleanup(self, b: Bench) -> None:
        if b.agents:
            deprovision(b.target, b.agents, None, lambda line: None)


def run(target: Target, out: Path, *, runs: int = 3, fleet_size: int = 10,
        progress: Callable[[str], None] = print) -> dict[str, Any]:
    if not target.local:
        raise InputError("bench measures the local cloud (its request log counts API calls): unset HCLOUD_TOKEN")
    if runs < 1 or fleet_size < 2:
        raise InputError("--runs must be at least 1 and --fleet at least 2")
    b = Bench(target=target, client=api.connect(target), runs=runs, fleet_size=fleet_size, progress=progress)
    run_steps([BenchSnapshot(), Measure()], b, lambda line: progress(f"bench: {line.strip()}"))
    result = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": runs,
              "machine": _machine(), "targets": TARGETS,
              **{k: round(v, 2) if isinstance(v, float) else v for k, v in b.figures.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    return result


def _provision(b: Bench, ids: list[str], mode: str, ipv4: bool = True) -> dict[str, Any]:
    b.progress(f"bench: provisioning {len(ids)} agent(s) in {mode} mode{'' if ipv4 else ', IPv6-only'}")
    opts = ProvisionOptions(agent_ids=ids, mode=mode, snapshot=str(b.snapshot) if mode == "snapshot" else None,
                            parallel=len(ids), pool=False, ipv4=ipv4)  # cold: never an operator's pool host
    result = provision(b.target, opts, lambda line: None)
    for agent in result["agents"]:  # what booting cost each clone, read before it goes
        agent["cpu_seconds"] = _cpu_seconds(agent["server_id"]) if agent["server_id"] else None
    failed = [a for a in result["agents"] if a["status"] != "ready"]
    deprovision(b.target, ids, None, lambda line: None)
    if failed:
        raise ImagekitError(f"provisioning failed: {failed[0]['error']}")
    return result


def _cpu_seconds(server_id: int) -> float | None:
    """CPU-seconds the server's machine has spent since it started (the local cloud reads its cgroup)."""
    from localcloud import client as localcloud

    return localcloud.server_cpu_seconds(localcloud.running(), server_id)


def _median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def _machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) // 1024 // 1024
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "guests": "systemd-nspawn machines of the local cloud"}
