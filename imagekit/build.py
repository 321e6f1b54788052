"""``build-snapshot``: the golden image, as a pipeline of steps with cleanups.

Inputs are checked before anything exists, and hashed: a young enough snapshot of the same inputs
is handed out instead of a new one (``--force`` builds anyway; see build_inputs). Else temporary key →
builder server → boot → SSH → cloud-init → playbooks → checks (testinfra) → clean → shut down → snapshot. The
builder and the key are the cleanups of the steps that made them, so they go on success, failure and
Ctrl-C alike (or stay, with a working ``ssh`` line, under ``--keep-on-failure``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paramiko
from hcloud.images import BoundImage

from . import bake, build_inputs, events, multiarch, profiles, runid, settings
from .cloud import actions, api, family, lookups, networks, spec
from .data import path as data_path
from .errors import CloudError, HostError, InputError
from .host import checks, playbook, ssh
from .leftovers import removing
from .pipeline import Step, run_steps
from .steps.install import playbook_variables, source_revision
from .steps.job import HostJob
from .steps.key import TemporaryKey
from .steps.ready import WaitCloudInit, WaitSSH
from .steps.server import Boot, CreateServer
from .target import Target

SHUTDOWN_GRACE = 60
SNAPSHOT_TIMEOUT = 1800


@dataclass
class BuildOptions:
    profile: str = "agent"
    base_image: str = "debian-12"
    server_type: str = "cx23"
    arch: tuple[str, ...] = ()  # --arch: one build per architecture, in parallel (multiarch); (): the type's
    arm_server_type: str = "cax11"  # the arm builder's type under --arch (server_type: the x86 one)
    location: str | None = None
    name: str = "imagekit-{profile}-{build_id}"
    keep_on_failure: bool = False
    package_source: str | None = None  # default: local on the local cloud, vendor on Hetzner
    ssh_timeout: float = 300  # seconds the builder may take to accept SSH and finish cloud-init
    events: str | None = None  # live events to this file (``-``: stdout)
    force: bool = False  # build even if a snapshot of the same inputs is young enough to reuse
    max_age: float = 7  # days a snapshot of the same inputs is reused for (weekly security updates still arrive)
    parent: str | None = None  # --from: `latest` or a snapshot id of the profile the builder starts from
    run_id: str | None = None  # labels the builder and its key (``gc --run``); default: the build id
    agent_bundle: Path | None = None  # code baked in (default: the profile's `bundle:`, if any)
    images: list[str] = field(default_factory=list)  # container images baked in, besides the profile's `images:`
    networks: tuple[str, ...] = ()  # private networks the builder joins; ssh_via private: reached there
    ssh_via: str = "public"
    ipv4: bool = True  # off: an IPv6-only builder (what an IPv6-only network needs the image to work with)


@dataclass(kw_only=True)
class BuildJob(HostJob):  # the spec's image: the base image, the parent snapshot, or the snapshot being verified
    target: Target
    options: BuildOptions = field(default_factory=BuildOptions)
    build_id: str = ""
    server_type: str = ""  # the builder's
    arch: str | None = None  # the architecture asked for (--arch); None: the server type's
    tag: str | None = None  # its events' `agent` and its progress lines' prefix when several architectures build
    snapshot: BoundImage | None = None
    description: str = ""
    playbook: playbook.Playbook | None = None  # set with the inputs (check_inputs), before any step
    baked: bake.Bake | None = None  # the code and images baked in; set with the inputs
    inputs_hash: str = ""
    parent: BoundImage | None = None  # an incremental build's starting snapshot
    size_before_clean: int | None = None
    size_after_clean: int | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    stream: events.Events = field(default_factory=events.Events)

    def event(self, what: str, detail: str = "") -> None:
        self.stream.emit(what, agent=self.tag, detail=detail or None)


def check_inputs(job: BuildJob) -> None:
    """Everything that can be wrong is found here, before anything is created."""
    o, c = job.options, job.client
    if not o.max_age > 0:
        raise InputError(f"--max-age {o.max_age:g}: give a number of days above 0 (--force builds whatever exists)")
    if not o.ipv4:
        family.require_ipv6_route(job.target)
    # Grown from a snapshot (--from): its packages upgraded, the playbooks re-run (only changes do work).
    job.spec = spec.resolve(c, server_type=job.server_type, location=o.location, warn=job.progress, labels=job.labels,
                            image=lambda arch: lookups.own_snapshot(c, o.parent, o.profile, arch) if o.parent
                            else lookups.base_image(c, o.base_image, arch, job.progress), ipv4=o.ipv4)
    attached, reached_on = networks.attach(c, o.networks, o.ssh_via)
    job.spec = replace(job.spec, networks=attached, ssh_network=reached_on)
    if job.arch and job.spec.architecture != job.arch:
        option = "--arm-server-type" if job.arch == "arm" else "--server-type"
        raise InputError(f"--arch {job.arch}: server type {job.server_type} is {job.spec.architecture}; pass {option} "
                         f"with a type of {job.arch}")
    if o.parent:
        job.parent = job.spec.image
        if (base := (job.parent.labels or {}).get("base-image")) != o.base_image:
            raise InputError(f"snapshot {job.parent.id} was built on {base}, not {o.base_image}: pass --base-image "
                             f"{base}, or build from scratch without --from")
    job.description = o.name.format(profile=o.profile, build_id=job.build_id, arch=job.spec.architecture)
    if any(i.description == job.description for i in c.images.get_all(type=["snapshot"])):
        raise CloudError(f"a snapshot named '{job.description}' exists already; pick another --name")
    variables = playbook_variables(o.profile, o.base_image, o.package_source, job.target.local, job.build_id,
                                   grown=job.parent is not None, ipv4=o.ipv4)
    job.playbook = playbook.load(o.profile, variables)
    job.baked = bake.resolve(profiles.load(o.profile), o.agent_bundle, o.images, job.target.local)
    job.playbook.expect.update(bake.expectations(job.baked))  # the checks find the code and images there
    job.inputs_hash = build_inputs.inputs_hash(o.profile, variables, api.known(job.spec.image.id, "the image's id"),
                                               job.spec.architecture, job.baked.inputs())
    if ident := settings.get("HETZNER_SSH_KEY_ID"):  # the operator's way into a kept builder
        job.spec = replace(job.spec, ssh_keys=(lookups.ssh_key(c, ident),))


class RunPlaybooks:
    name = "playbooks"

    def run(self, s: BuildJob) -> None:
        assert s.ip is not None and s.keypair is not None and s.playbook is not None
        with ssh.fabric_connection(s.ip, s.keypair, pin=s.pin) as conn:
            playbook.run(s.playbook, playbook.fabric_runner(conn), progress=s.progress)


class RunChecks:
    """The image's testinfra checks; on a clone also the checks that it is a machine of its own."""

    def __init__(self, clone: bool = False):
        self.clone = clone
        self.name = "checks on the clone (testinfra)" if clone else "checks (testinfra)"

    def run(self, s: BuildJob) -> None:
        assert s.ip is not None and s.keypair is not None and s.pin is not None and s.playbook is not None
        checks.run_checks(s.ip, s.keypair, s.pin, s.playbook.expect, clone=self.clone)


class CleanImage:
    name = "clean image"

    def run(self, s: BuildJob) -> None:
        assert s.conn is not None and s.playbook is not None
        s.size_before_clean = _disk_used(s.conn)
        code, out, _ = ssh.run(s.conn, f"cat {s.playbook.expect['host']['manifest']}")
        s.versions = json.loads(out).get("versions", {}) if code == 0 else {}
        code, out, err = ssh.run(s.conn, data_path("clean_image.sh").read_text(), timeout=600)
        if code != 0:
            raise HostError(f"cleaning the image failed: {(out + err).strip()[-800:]}")
        s.size_after_clean = _disk_used(s.conn)
        s.conn.close()
        s.conn = None


def _disk_used(conn: paramiko.SSHClient) -> int:
    """Bytes in the root file system (du, not df: on the local cloud df shows the whole pool)."""
    code, out, _ = ssh.run(conn, "du -sxb / 2>/dev/null | cut -f1")
    return int(out.strip()) if code == 0 and out.strip().isdigit() else 0


class ShutDown:
    name = "shut down"

    def run(self, s: BuildJob) -> None:
        assert s.server is not None
        actions.wait(s.client, s.server.shutdown(), 120, "shutting down the builder")
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while time.monotonic() < deadline:  # shutdown finishes before the server is off
            s.server.reload()
            if s.server.status == "off":
                return
            time.sleep(0.5)
        s.progress(f"builder not off after {SHUTDOWN_GRACE} s; powering it off")
        actions.wait(s.client, s.server.power_off(), 120, "powering off the builder")


class Snapshot:
    name = "snapshot"

    def run(self, s: BuildJob) -> None:
        assert s.server is not None
        o = s.options
        labels = api.labels(profile=o.profile, **{
            "build-id": s.build_id, "source-revision": source_revision(), "base-image": o.base_image,
            "version": s.build_id.split("-")[0], build_inputs.LABEL: s.inputs_hash,
            **({"parent-snapshot": str(s.parent.id)} if s.parent else {}),
            **(s.baked.labels() if s.baked else {})})
        resp = s.server.create_image(type="snapshot", description=s.description, labels=labels)
        s.snapshot = resp.image
        actions.wait(s.client, resp.action, SNAPSHOT_TIMEOUT, "creating the snapshot")
        s.snapshot = s.client.images.get_by_id(api.known(resp.image.id, "the snapshot's id"))

    def cleanup(self, s: BuildJob) -> None:
        if s.failed:
            discard_snapshot(s)


def discard_snapshot(s: BuildJob) -> None:
    """Delete the snapshot the build made, if it made one (a reused one is not the build's)."""
    if s.snapshot is not None:
        with removing("snapshot", s.snapshot.id, s.description, f"hcloud image delete {s.snapshot.id}"):
            s.client.images.delete(s.snapshot)
        s.snapshot = None


def build_snapshot(target: Target, options: BuildOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    """One snapshot (the server type's architecture), or with ``--arch`` one per architecture, built in parallel:
    the result of one build, or ``snapshots``, one result per architecture."""
    client = api.connect(target)
    builders = multiarch.builders(options.arch, options.server_type, options.arm_server_type)
    build_ids = [runid.new() for _ in builders]
    run = runid.given(options.run_id) if options.run_id else build_ids[0]
    several = len(builders) > 1
    jobs = [BuildJob(client=client, progress=multiarch.prefixed(progress, arch) if several else progress,
                     resource_name=f"imagekit-build-{build_id}",
                     labels=api.labels(role="builder", **{"build-id": build_id, runid.LABEL: run}),
                     timeout=options.ssh_timeout, keep_on_failure=options.keep_on_failure, target=target,
                     options=options, build_id=build_id, server_type=server_type, arch=arch,
                     tag=arch if several else None)
            for (arch, server_type), build_id in zip(builders, build_ids, strict=True)]
    requests_before = api.requests_served(target)
    with events.stream(options.events, build_ids[0], command="build-snapshot", profile=options.profile) as ev:
        for job in jobs:
            job.stream = ev  # the builder's own events (a location without capacity) go to the same stream
            check_inputs(job)
        multiarch.check_names([job.description for job in jobs])
        results = multiarch.in_parallel(jobs, lambda job: _deliver(job, ev.step_reporter(job.tag)), discard_snapshot,
                                        progress) if several else [_deliver(jobs[0], ev.step_reporter())]
        ev.outcome = "succeeded: " + ", ".join(f"{'reused ' if r['reused'] else ''}snapshot {r['snapshot_id']}"
                                                for r in results)
    requests_after = api.requests_served(target)
    served = {"api_requests": requests_after - requests_before
              if requests_before is not None and requests_after is not None else None}
    return {**served, "snapshots": results} if several else {**served, **results[0]}


def _deliver(job: BuildJob, reporter: events.StepEvents) -> dict[str, Any]:
    """The snapshot of the job's inputs: one young enough already made, else built."""
    o = job.options
    found = None if o.force else build_inputs.reusable_snapshot(job.client, o.profile, job.inputs_hash, o.max_age)
    image, result = _reuse(job, *found) if found else _build(job, reporter)
    return {
        "snapshot_id": image.id, "architecture": image.architecture, "description": image.description,
        "labels": image.labels, "image_size_gb": image.image_size, "inputs_hash": job.inputs_hash,
        "bundle_digest": job.baked.digest if job.baked else None,
        "images": [i.reference for i in job.baked.images] if job.baked else [],
        "parent_snapshot_id": job.parent.id if job.parent else None, **result,
    }


def _build(job: BuildJob, reporter: events.StepEvents) -> tuple[BoundImage, dict[str, Any]]:
    o = job.options
    start = f"snapshot {job.parent.id} (grown: upgraded, playbooks re-run)" if job.parent else f"base {o.base_image}"
    job.progress(f"build {job.build_id}: profile {o.profile}, {start}, type {job.server_type}, "
                 f"on the {job.target.describe()}")
    assert job.baked is not None, "set with the inputs"
    steps: list[Step[BuildJob]] = [TemporaryKey(), CreateServer("builder server"), Boot("builder server"), WaitSSH(),
                                   WaitCloudInit(), RunPlaybooks(), bake.BakeCode(job.baked, job.target.local),
                                   bake.BakeImages(job.baked), RunChecks(), CleanImage(), ShutDown(), Snapshot()]
    durations = run_steps(steps, job, job.progress, reporter, job.cancel)
    assert job.snapshot is not None and job.playbook is not None
    return job.snapshot, {
        "reused": False, "disk_used_before_clean": job.size_before_clean,
        "disk_used_after_clean": job.size_after_clean, "build_id": job.build_id, "durations": durations,
        "seconds": round(sum(durations.values()), 2), "expect": job.playbook.expect, "versions": job.versions}


def _reuse(job: BuildJob, image: BoundImage, age: float) -> tuple[BoundImage, dict[str, Any]]:
    """A build that finds its snapshot made already: nothing is created, the result says so."""
    age_text = f"{age:.1f} days" if age >= 1 else f"{age * 24:.1f} hours"
    job.progress(f"reusing snapshot {image.id} ({image.description}): built from the same inputs {age_text} ago, "
                 f"within --max-age {job.options.max_age:g} days; nothing is built (--force builds anyway)")
    return image, {"reused": True, "age_days": round(age, 3), "build_id": (image.labels or {}).get("build-id"),
                   "durations": {}, "seconds": 0}
