"""The floors the bench's figures are measured against: what a bare script would do.

- a clone's floor: create a server from the snapshot, then log in as soon as sshd answers. It goes through the
  same create step as every command (with one location that is one create request, as a bare SDK call makes),
  and, as a bare loop, waits neither for the create action nor for cloud-init;
- ``fleet`` such floors at once;
- the bare build: builder, SSH, cloud-init, the same packages by one plain ``apt-get install``, shut down,
  snapshot (deleted again); no checks, no cleaning."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from hcloud import Client

from .. import runid
from ..build import BuildJob, BuildOptions, ShutDown, check_inputs
from ..cloud import actions, api, lookups
from ..cloud.spec import resolve
from ..errors import ImagekitError
from ..host import playbook, ssh
from ..leftovers import removing
from ..pipeline import Step, run_steps
from ..steps.job import HostJob
from ..steps.key import TemporaryKey
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import Boot, CreateServer
from ..target import Target


def floor(client: Client, snapshot: int, i: int, progress: Callable[[str], None]) -> float:
    """Seconds from a bare create to the first SSH login on a clone of ``snapshot``."""
    progress(f"bench: floor run {i + 1}")
    spec = resolve(client, server_type="cx23", location=None, labels=api.labels(role="bench"),
                   image=lambda arch: lookups.snapshot(client, str(snapshot), "agent", arch))
    job = HostJob(client=client, progress=lambda line: None, resource_name=f"imagekit-bench-floor-{i}",
                  labels=api.labels(role="bench"), spec=spec, timeout=300)
    durations = run_steps([TemporaryKey(), CreateServer(), WaitSSH()], job, lambda line: None)
    return round(durations["server"] + durations["ssh"], 2)


def floor_fleet(client: Client, snapshot: int, size: int, progress: Callable[[str], None]) -> float:
    """Wall time of ``size`` floors at once: the bare loop, in parallel (what a fleet of agents compares to)."""
    progress(f"bench: {size} bare clones at once")
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            floor(client, snapshot, 100 + i, lambda line: None)
        except BaseException as exc:  # noqa: BLE001 - reported below, after every thread ended
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(size)]
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
        assert book is not None and s.ip is not None and s.keypair is not None
        sources = [op for op in book.steps if op.name.startswith(("apt key", "apt source"))]
        install = playbook.Operation(name="plain install", unless="false", timeout=1800, run=(
            "apt-get -q update && apt-get -q -y install " + " ".join(book.expect["packages"])))
        plain = playbook.Playbook(name="bare", steps=[*sources, install], expect=book.expect,
                                  environment=book.environment)
        with ssh.fabric_connection(s.ip, s.keypair, pin=s.pin) as conn:
            playbook.run(plain, playbook.fabric_runner(conn))


class BareSnapshot:
    name = "snapshot"

    def run(self, s: BuildJob) -> None:
        assert s.server is not None
        resp = s.server.create_image(type="snapshot", description=s.description, labels=api.labels(role="bench"))
        s.snapshot = resp.image
        actions.wait(s.client, resp.action, 1800, "creating the bare snapshot")

    def cleanup(self, s: BuildJob) -> None:
        if s.snapshot is not None:
            with removing("snapshot", s.snapshot.id, s.description, f"hcloud image delete {s.snapshot.id}"):
                s.client.images.get_by_id(api.known(s.snapshot.id, "the snapshot's id")).delete()


def floor_build(target: Target, client: Client) -> dict[str, Any]:
    """The bare build, timed like build-snapshot: the sum of its steps."""
    build_id = runid.new()
    options = BuildOptions(name="imagekit-bench-bare-{build_id}", force=True)
    labels = api.labels(role="builder", **{"build-id": build_id, runid.LABEL: build_id})
    job = BuildJob(client=client, progress=lambda line: None, resource_name=f"imagekit-bench-bare-{build_id}",
                   labels=labels, timeout=options.ssh_timeout, target=target, options=options, build_id=build_id,
                   server_type=options.server_type)
    check_inputs(job)
    steps: list[Step[BuildJob]] = [TemporaryKey(), CreateServer("bare builder"), Boot("bare builder"), WaitSSH(),
                                   WaitCloudInit(), BareInstall(), ShutDown(), BareSnapshot()]
    durations = run_steps(steps, job, lambda line: None)
    return {"seconds": round(sum(durations.values()), 2), "durations": durations}
