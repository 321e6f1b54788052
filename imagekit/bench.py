"""``invoke bench``: the figures behind imagekit's performance goals, measured on the local cloud.

One run builds a snapshot (and one grown from it with ``--from``, and a bare one: the same packages by one
plain ``apt-get install``, snapshotted without checks or cleaning), then measures provisioning from it
(median of ``runs``; with the CPU-seconds each clone's machine spent until ready), the floor (a plain SDK
loop: create a server from the same snapshot, log in over SSH; median of ``runs``), one full-install
fallback, ``fleet`` agents at once against ``fleet`` bare clones at once, and a claim of a warm pool host.
It writes JSON (the keys below are the interface) and a Markdown table beside it, and leaves the cloud as it
found it. Figures are ratios measured in one run: the machines are shared and noisy.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import profiles
from .build import BuildJob, BuildOptions, ShutDown, build_snapshot, check_inputs, new_build_id
from .cloud import api, lookups
from .errors import ImagekitError, InputError
from .fleet.deprovision import deprovision
from .host import playbook, ssh
from .host.audit import EXPOSURE_LIMIT, LYNIS_TARGET, Audit, audit
from .pipeline import run_steps
from .pool import fill as pool_fill
from .pool import members as pool_members
from .provision import ProvisionOptions, provision
from .roundtrip import RoundTrip
from .steps.firewall import profile_firewall
from .steps.job import HostJob
from .steps.key import TemporaryKey
from .steps.ready import WaitCloudInit, WaitSSH
from .steps.server import CreateServer, delete
from .target import Target

TARGETS = {"fallback_over_snapshot": ">= 10", "provision_over_floor": "<= 1.15", "api_requests_per_agent": "<= 8",
           "api_requests_per_build": "<= 30", "fleet_over_floor": "<= 1.2",
           "incremental_over_full": "<= 0.4", "boot_cpu_seconds": "<= 3", "build_over_floor_build": "<= 1.0",
           "snapshot_size_bytes": "<= 650000000",
           "pool_claim_seconds": "<= 1.5", "pool_speedup": ">= 3",
           "lynis_hardening_index": f">= {LYNIS_TARGET}", "agent_unit_exposure": f"<= {EXPOSURE_LIMIT}"}


@dataclass
class Bench:
    target: Target
    client: object
    runs: int
    fleet_size: int
    progress: object
    build: dict = field(default_factory=dict)
    incremental: dict = field(default_factory=dict)  # a build grown from the bench's snapshot (--from)
    floor_build: dict = field(default_factory=dict)  # the bare build: same packages, plain apt-get, no checks
    snapshot: int | None = None
    firewalls_before: set[int] = field(default_factory=set)
    agents: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    failed: bool = False


class BenchSnapshot:
    """The snapshot every figure is measured from; it goes at the end, with the profile's firewall if the
    bench made it."""

    name = "snapshot"

    def run(self, b: Bench) -> None:
        b.firewalls_before = {f.id for f in b.client.firewalls.get_all()}
        # Forced: the build is one of the figures, and its snapshot is deleted at the end (never reuse one).
        b.build = build_snapshot(b.target, BuildOptions(name="imagekit-bench-{build_id}", force=True),
                                 lambda line: None)
        b.snapshot = b.build["snapshot_id"]
        b.incremental = build_snapshot(b.target, BuildOptions(name="imagekit-bench-grown-{build_id}", force=True,
                                                              parent=str(b.snapshot)), lambda line: None)
        b.progress("bench: the bare build (same packages, one plain apt-get install, no checks, no cleaning)")
        b.floor_build = _floor_build(b)

    def cleanup(self, b: Bench) -> None:
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
        singles, many_ids = [f"bench-s{i}" for i in range(b.runs)], [f"bench-p{i}" for i in range(b.fleet_size)]
        b.agents = [*singles, "bench-fb", *many_ids]
        snap = [_provision(b, [agent], "snapshot") for agent in singles]
        floor = [_floor(b.client, b.snapshot, i, b.progress) for i in range(b.runs)]
        floor_fleet = _floor_fleet(b)
        fallback = _provision(b, ["bench-fb"], "fallback")
        many = _provision(b, many_ids, "snapshot")
        s_med = statistics.median(r["agents"][0]["seconds_to_ready"] for r in snap)
        cpu = [r["agents"][0]["cpu_seconds"] for r in snap if r["agents"][0]["cpu_seconds"] is not None]
        one_wall = statistics.median(r["seconds"] for r in snap)
        build = b.build
        b.figures = {
            "snapshot_seconds": s_med,
            "fallback_seconds": fallback["agents"][0]["seconds_to_ready"],
            "floor_seconds": statistics.median(floor),
            "api_requests_per_agent": statistics.median(r["api_requests"] for r in snap),
            "api_requests_per_agent_in_fleet": round(many["api_requests"] / b.fleet_size, 2),
            "api_requests_per_build": build["api_requests"],
            "one_agent_wall_seconds": one_wall,
            "fleet_size": b.fleet_size,
            "fleet_wall_seconds": many["seconds"],
            "floor_fleet_wall_seconds": floor_fleet,
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
        b.figures["provision_over_floor"] = round(s_med / b.figures["floor_seconds"], 2)
        b.figures["fleet_over_floor"] = round(many["seconds"] / floor_fleet, 2)
        b.figures["build_over_floor_build"] = round(build["seconds"] / b.floor_build["seconds"], 2)
        b.figures.update(_hardening(b))
        b.figures["pool_claim_seconds"] = _pool_claim(b)
        b.figures["pool_speedup"] = round(s_med / b.figures["pool_claim_seconds"], 2)

    def cleanup(self, b: Bench) -> None:
        if b.agents:
            deprovision(b.target, b.agents, None, lambda line: None)


def run(target: Target, out: Path, *, runs: int = 3, fleet_size: int = 10, progress=print) -> dict:
    if not target.local:
        raise InputError("bench measures the local cloud (its request log counts API calls): unset HCLOUD_TOKEN")
    if runs < 1 or fleet_size < 2:
        raise InputError("--runs must be at least 1 and --fleet at least 2")
    b = Bench(target=target, client=api.connect(target), runs=runs, fleet_size=fleet_size, progress=progress)
    run_steps([BenchSnapshot(), Measure()], b, lambda line: progress(f"bench: {line.strip()}"))
    figures = b.figures
    result = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "runs": runs,
              "machine": _machine(), "targets": TARGETS,
              **{k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    return result


def _provision(b: Bench, ids: list[str], mode: str) -> dict:
    b.progress(f"bench: provisioning {len(ids)} agent(s) in {mode} mode")
    opts = ProvisionOptions(agent_ids=ids, mode=mode, snapshot=str(b.snapshot) if mode == "snapshot" else None,
                            parallel=len(ids), pool=False)  # cold: never an operator's pool host
    result = provision(b.target, opts, lambda line: None)
    for agent in result["agents"]:  # what booting cost each clone, read before it goes
        agent["cpu_seconds"] = _cpu_seconds(agent["server_id"]) if agent["server_id"] else None
    failed = [a for a in result["agents"] if a["status"] != "ready"]
    deprovision(b.target, ids, None, lambda line: None)
    if failed:
        raise ImagekitError(f"provisioning failed: {failed[0]['error']}")
    return result


@dataclass
class AuditJob(HostJob):
    bench: Bench | None = None
    found: Audit | None = None


class AuditHost:
    """lynis and ``systemd-analyze security`` on a ready agent host, reached with the job's temporary key."""

    name = "audit a ready agent host"

    def run(self, s: AuditJob) -> None:
        b = s.bench
        result = provision(b.target, ProvisionOptions(agent_ids=["bench-audit"], snapshot=str(b.snapshot),
                                                      operator_key=str(s.ssh_key.id)), lambda line: None)
        [agent] = result["agents"]
        if agent["status"] != "ready":
            raise ImagekitError(f"provisioning the audited host failed: {agent['error']}")
        s.conn = ssh.connect(agent["ipv4"], s.keypair)
        s.found = audit(s.conn)

    def cleanup(self, s: AuditJob) -> None:
        if s.conn is not None:
            s.conn.close()
        deprovision(s.bench.target, ["bench-audit"], None, lambda line: None)


def _hardening(b: Bench) -> dict:
    b.progress("bench: auditing a ready agent host (lynis)")
    job = AuditJob(client=b.client, progress=lambda line: None, resource_name="imagekit-bench-audit",
                   labels=api.labels(role="bench"), bench=b)
    run_steps([TemporaryKey(), AuditHost()], job, lambda line: None)
    return {"lynis_hardening_index": job.found.lynis_index, "lynis_suggestions": job.found.suggestions,
            "agent_unit_exposure": job.found.unit_exposure}


@dataclass
class PoolJob(HostJob):
    bench: Bench | None = None
    pool_host: int | None = None
    seconds: float | None = None


class ClaimPoolHost:
    """One pool host made from the bench's snapshot and reached by the job's temporary key, so that only this
    claim can take it (an operator's pool is another snapshot's and key's), then a provision that claims it."""

    name = "fill one pool host and claim it"

    def run(self, s: PoolJob) -> None:
        b, stype = s.bench, lookups.server_type(s.client, "cx23")
        plan = pool_fill.Plan(client=s.client, profile="agent", server_type=stype, locations=lookups.locations(
            s.client, None), image=s.client.images.get_by_id(b.snapshot), key=s.ssh_key, keypair=s.keypair,
            firewall=profile_firewall(s.client, profiles.load("agent"))[0], progress=lambda line: None, parallel=1)
        made = pool_fill.make_host(plan)
        if made["error"]:
            raise ImagekitError(f"filling the pool host failed: {made['error']}")
        s.pool_host = made["server_id"]
        result = provision(b.target, ProvisionOptions(agent_ids=["bench-pool"], snapshot=str(b.snapshot),
                                                      operator_key=str(s.ssh_key.id), keypair=s.keypair),
                           lambda line: None)
        [agent] = result["agents"]
        if agent["status"] != "ready" or agent["mode"] != "pool" or agent["server_id"] != s.pool_host:
            raise ImagekitError(f"the pool host was not claimed: {agent['mode']}, {agent['status']}, "
                                f"{agent['error']}")
        s.seconds = agent["seconds_to_ready"]

    def cleanup(self, s: PoolJob) -> None:
        deprovision(s.bench.target, ["bench-pool"], None, lambda line: None)
        for left in pool_members.members(s.client, "agent"):  # still there when the claim did not take it
            if left.id == s.pool_host:
                delete(s.client, left, f"deleting pool host {left.id}")


def _pool_claim(b: Bench) -> float:
    b.progress("bench: filling one pool host and claiming it")
    job = PoolJob(client=b.client, progress=lambda line: None, resource_name="imagekit-bench-pool",
                  labels=api.labels(role="bench"), bench=b)
    run_steps([TemporaryKey(), ClaimPoolHost()], job, lambda line: None)
    return job.seconds


class BareLogin:
    """The floor: create a server from the snapshot with the plain SDK, then try SSH until a login works."""

    name = "bare create and login"

    def run(self, s: RoundTrip) -> None:
        t0 = time.monotonic()
        s.server = s.client.servers.create(name=s.resource_name, server_type=s.server_type, image=s.image,
                                           ssh_keys=[s.ssh_key], labels=s.labels).server
        ssh.wait_for_ssh(s.server.public_net.ipv4.ip, s.keypair, deadline=s.deadline).close()
        s.seconds = round(time.monotonic() - t0, 2)

    def cleanup(self, s: RoundTrip) -> None:
        if s.server is not None:
            delete(s.client, s.server, f"deleting server {s.server.id}")


def _floor(client, snapshot: int, i: int, progress) -> float:
    progress(f"bench: floor run {i + 1}")
    stype = lookups.server_type(client, "cx23")
    job = RoundTrip(client=client, progress=lambda line: None, resource_name=f"imagekit-bench-floor-{i}",
                    labels=api.labels(role="bench"), timeout=300, server_type=stype,
                    image=lookups.snapshot(client, str(snapshot), "agent", stype.architecture))
    run_steps([TemporaryKey(), BareLogin()], job, lambda line: None)
    return job.seconds


def _cpu_seconds(server_id: int) -> float | None:
    """CPU-seconds the server's machine has spent since it started (the local cloud reads its cgroup)."""
    from localcloud import client as localcloud

    return localcloud.server_cpu_seconds(localcloud.running(), server_id)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _floor_fleet(b: Bench) -> float:
    """Wall time of ``fleet_size`` floors at once: the bare SDK loop, in parallel (what ten agents compare to)."""
    b.progress(f"bench: {b.fleet_size} bare clones at once")
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            _floor(b.client, b.snapshot, 100 + i, lambda line: None)
        except BaseException as exc:  # noqa: BLE001 - reported below, after every thread ended
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(b.fleet_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise ImagekitError(f"a bare clone failed: {errors[0]}")
    return round(time.monotonic() - t0, 2)


class BareInstall:
    """The bare build's one job: the package source's apt files, then one plain ``apt-get install`` of the
    profile's packages (with recommends, docs and dpkg's fsyncs: apt's defaults)."""

    name = "plain apt-get install"

    def run(self, s: BuildJob) -> None:
        book = s.playbook
        sources = [op for op in book.steps if op.name.startswith(("apt key", "apt source"))]
        install = playbook.Operation(name="plain install", unless="false", timeout=1800, run=(
            "apt-get -q update && apt-get -q -y install " + " ".join(book.expect["packages"])))
        plain = playbook.Playbook(name="bare", steps=[*sources, install], expect=book.expect,
                                  environment=book.environment)
        with ssh.fabric_connection(s.ip, s.keypair) as conn:
            playbook.run(plain, playbook.fabric_runner(conn))

    def cleanup(self, s: BuildJob) -> None:
        pass


class BareSnapshot:
    name = "snapshot"

    def run(self, s: BuildJob) -> None:
        from .cloud import actions

        resp = s.server.create_image(type="snapshot", description=s.description, labels=api.labels(role="bench"))
        s.snapshot = resp.image
        actions.wait(s.client, resp.action, 1800, "creating the bare snapshot")

    def cleanup(self, s: BuildJob) -> None:
        if s.snapshot is not None:
            s.client.images.get_by_id(s.snapshot.id).delete()


def _floor_build(b: Bench) -> dict:
    """The bare build: builder, SSH, cloud-init, the same packages by one plain apt-get install, shut down,
    snapshot (deleted again). Timed like build-snapshot: the sum of its steps."""
    build_id = new_build_id()
    options = BuildOptions(name="imagekit-bench-bare-{build_id}", force=True)
    job = BuildJob(client=b.client, progress=lambda line: None, resource_name=f"imagekit-bench-bare-{build_id}",
                   labels=api.labels(role="builder", **{"build-id": build_id}), timeout=options.ssh_timeout,
                   target=b.target, options=options, build_id=build_id)
    check_inputs(job)
    steps = [TemporaryKey(), CreateServer("bare builder"), WaitSSH(), WaitCloudInit(), BareInstall(), ShutDown(),
             BareSnapshot()]
    durations = run_steps(steps, job, lambda line: None)
    return {"seconds": round(sum(durations.values()), 2), "durations": durations}


def _machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) // 1024 // 1024
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "guests": "systemd-nspawn machines of the local cloud"}


def markdown(r: dict) -> str:
    m = r["machine"]
    rows = [
        ("snapshot mode: seconds to ready (median)", f"{r['snapshot_seconds']} s", ""),
        ("fallback mode: seconds to ready", f"{r['fallback_seconds']} s", ""),
        ("warm pool: claim → ready", f"{r['pool_claim_seconds']} s", TARGETS["pool_claim_seconds"]),
        ("cold snapshot ÷ pool claim", f"{r['pool_speedup']}×", TARGETS["pool_speedup"]),
        ("fallback ÷ snapshot", f"{r['fallback_over_snapshot']}×", TARGETS["fallback_over_snapshot"]),
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
        ("systemd-analyze security openclaw-agent", f"{r['agent_unit_exposure']}", TARGETS["agent_unit_exposure"]),
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
