"""Bench figures that need a host of their own: the hardening audit of a ready agent host (lynis, ``systemd-analyze
security``) and, on the same host, a container of the image baked into the snapshot against ``docker load`` of the
same archive (what a host without baked images does at boot); and a claim of a warm pool host, then of the same
host recycled into the pool. Each runs under a
temporary key of its own, so that only it can reach what it made (an operator's pool belongs to another snapshot
and key)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paramiko

from .. import profiles, runid
from ..cloud import api
from ..cloud.servers import delete
from ..cloud.spec import resolve
from ..errors import ImagekitError
from ..fleet.deprovision import deprovision
from ..host import hostkey, ssh
from ..host.audit import Audit, audit
from ..pipeline import run_steps
from ..pool import fill as pool_fill
from ..pool import members as pool_members
from ..pool import recycle
from ..provision import ProvisionOptions, provision
from ..steps.firewall import profile_firewall
from ..steps.job import HostJob
from ..steps.key import TemporaryKey
from .state import Bench

BENCH_IMAGE = "imagekit-bench/busybox:1"


@dataclass(kw_only=True)
class BenchJob(HostJob):
    bench: Bench
    found: Audit | None = None
    containers: dict[str, float] = field(default_factory=dict)
    pool_host: int | None = None
    pool_plan: pool_fill.PoolPlan | None = None
    seconds: float | None = None
    recycled_seconds: float | None = None


class AuditHost:
    """lynis and ``systemd-analyze security`` on a ready agent host, reached with the job's temporary key."""

    name = "audit a ready agent host"

    def run(self, s: BenchJob) -> None:
        b = s.bench
        assert s.ssh_key is not None and s.keypair is not None, "AuditHost follows TemporaryKey"
        result = provision(b.target, ProvisionOptions(agent_ids=["bench-audit"], snapshot=str(b.snapshot),
                                                      operator_key=str(s.ssh_key.id)), lambda line: None)
        [agent] = result["agents"]
        if agent["status"] != "ready":
            raise ImagekitError(f"provisioning the audited host failed: {agent['error']}")
        s.conn = ssh.connect(agent["ipv4"], s.keypair, pin=hostkey.pin(s.client.servers.get_by_id(agent["server_id"])))
        s.found = audit(s.conn)
        assert b.image_archive is not None, "the bench's snapshot has its image baked in"
        s.containers = container_start(s.conn, b.image_archive)

    def cleanup(self, s: BenchJob) -> None:
        if s.conn is not None:
            s.conn.close()
        deprovision(s.bench.target, ["bench-audit"], None, lambda line: None)


def hardening(b: Bench) -> dict[str, Any]:
    b.progress("bench: auditing a ready agent host (lynis)")
    job = BenchJob(client=b.client, progress=lambda line: None, resource_name="imagekit-bench-audit",
                   labels=api.labels(role="bench"), bench=b)
    run_steps([TemporaryKey(), AuditHost()], job, lambda line: None)
    assert job.found is not None
    return {"lynis_hardening_index": job.found.lynis_index, "lynis_suggestions": job.found.suggestions,
            "agent_unit_exposure": job.found.unit_exposure, **job.containers}


def bench_image(folder: Path) -> Path:
    """The small image the bench bakes (Debian's busybox-static as a `docker save` archive), written in ``folder``."""
    from localcloud import client as localcloud

    return localcloud.busybox_image(folder, BENCH_IMAGE)


def container_start(conn: paramiko.SSHClient, archive: Path) -> dict[str, float]:
    """Seconds to run a container of the baked image (Docker's daemon already up: socket activation is not counted),
    and seconds to ``docker load`` the same archive on a host that lacks it (sent over SSH, as a boot script would
    fetch it)."""
    ssh.must(conn, "docker info >/dev/null", "starting Docker")
    start = time.monotonic()
    ssh.must(conn, f"docker run --rm --pull=never --network=none {BENCH_IMAGE} true", "running the baked image")
    baked = time.monotonic() - start
    ssh.must(conn, f"docker rmi {BENCH_IMAGE}", "removing the baked image")
    start = time.monotonic()
    ssh.must(conn, "docker load", "loading the image", stdin=archive.read_bytes())
    return {"container_start_seconds": baked, "docker_load_seconds": time.monotonic() - start}


class ClaimPoolHost:
    """One pool host made from the bench's snapshot and reached by the job's temporary key, so that only this
    claim can take it (an operator's pool is another snapshot's and key's), then a provision that claims it."""

    name = "fill one pool host and claim it"

    def run(self, s: BenchJob) -> None:
        snapshot = s.bench.snapshot
        assert s.ssh_key is not None and s.keypair is not None, "ClaimPoolHost follows TemporaryKey"
        assert snapshot is not None, "the bench's snapshot is made first (BenchSnapshot)"
        spec = resolve(s.client, server_type="cx23", location=None, image=lambda arch: s.client.images.get_by_id(
            snapshot))
        firewall, _ = profile_firewall(s.client, profiles.load("agent"))
        plan = pool_fill.PoolPlan(client=s.client, profile="agent", key=s.ssh_key, keypair=s.keypair, parallel=1,
                                  spec=pool_fill.pool_spec(spec, "agent", s.ssh_key, firewall), run_id=runid.new())
        s.pool_plan = plan
        made = pool_fill.make_host(plan, lambda line: None, s.cancel)
        if made["error"]:
            raise ImagekitError(f"filling the pool host failed: {made['error']}")
        s.pool_host = made["server_id"]
        s.seconds = claim(s, "bench-pool", "the pool host")

    def cleanup(self, s: BenchJob) -> None:
        deprovision(s.bench.target, ["bench-pool"], None, lambda line: None)
        for left in pool_members.members(s.client, "agent"):  # still there when the claim did not take it
            if left.id == s.pool_host:
                delete(s.client, left, f"deleting pool host {left.id}")


def claim(s: BenchJob, agent_id: str, what: str) -> float:
    """Seconds to ready of a provision that must claim the bench's pool host, reached by the job's key."""
    assert s.ssh_key is not None and s.keypair is not None, "a claim follows TemporaryKey"
    result = provision(s.bench.target, ProvisionOptions(agent_ids=[agent_id], snapshot=str(s.bench.snapshot),
                                                        operator_key=str(s.ssh_key.id), keypair=s.keypair),
                       lambda line: None)
    [agent] = result["agents"]
    if agent["status"] != "ready" or agent["mode"] != "pool" or agent["server_id"] != s.pool_host:
        raise ImagekitError(f"{what} was not claimed: {agent['mode']}, {agent['status']}, {agent['error']}")
    return float(agent["seconds_to_ready"])


class ClaimRecycled:
    """The claimed host recycled into the pool as deprovision does (rebuilt from the snapshot with a new host key),
    then claimed again: a recycled host's claim beside a fresh one's."""

    name = "recycle the claimed host and claim it again"

    def run(self, s: BenchJob) -> None:
        assert s.pool_plan is not None and s.pool_host is not None, "ClaimRecycled follows ClaimPoolHost"
        server = s.client.servers.get_by_id(s.pool_host)
        left = recycle.minutes_left(api.known(server.created, "the server's creation time"), datetime.now(timezone.utc))
        if not recycle.recycle(recycle.Candidate(server, left, s.pool_plan), lambda line: None, s.cancel):
            raise ImagekitError("recycling the claimed pool host failed")
        s.recycled_seconds = claim(s, "bench-recycled", "the recycled host")

    def cleanup(self, s: BenchJob) -> None:
        deprovision(s.bench.target, ["bench-recycled"], None, lambda line: None)


def pool_claim(b: Bench) -> tuple[float, float]:
    """Seconds to claim a fresh pool host, and a recycled one (the same host, recycled after its claim)."""
    b.progress("bench: filling one pool host and claiming it; recycling it and claiming it again")
    job = BenchJob(client=b.client, progress=lambda line: None, resource_name="imagekit-bench-pool",
                   labels=api.labels(role="bench"), bench=b)
    run_steps([TemporaryKey(), ClaimPoolHost(), ClaimRecycled()], job, lambda line: None)
    assert job.seconds is not None and job.recycled_seconds is not None
    return job.seconds, job.recycled_seconds
