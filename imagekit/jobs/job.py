"""One job's pipeline, in a worker thread: temporary key → server (both leased while the run lives) → SSH to its
pinned host key → cloud-init → [fallback: playbooks] → work directory and secrets in → COMMAND in a sandboxed
transient unit, its output streamed → outputs/ out → the exit code judged. The server and the key are the
cleanups of the steps that made them: they go on every way out (a server with enough of its paid hour left back
into the pool instead: pool/recycle.py), and gc sweeps them once their run is gone."""

from __future__ import annotations

import re
import shlex
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .. import secretfile, tailnet
from ..cloud.api import known
from ..errors import HostError
from ..host import probe
from ..leftovers import removing
from ..pipeline import Step, StepFailed, run_steps
from ..pool.recycle import Recycled
from ..steps.install import install_profile
from ..steps.job import HostJob
from ..steps.key import TemporaryKey
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import Boot, CreateServer
from . import container, sandbox, transfer
from .plan import JobPlan
from .results import JobResult
from .transfer import Fetched

JOBS_DIR = "/opt/openclaw/jobs"
SECRETS_DIR = "/run/imagekit-jobs"  # tmpfs, root only: systemd reads the file, the command gets the values
KILL_AFTER = 5  # seconds between timeout's TERM and its KILL


class CommandFailed(Exception):
    """COMMAND exited non-zero: the job failed (``--keep-on-failure`` keeps the server), not imagekit."""


class Output:
    r"""COMMAND's output to the operator's terminal as it comes. One job alone: its bytes, as they are.
    Several, or with --json (stdout then holds only the JSON): lines prefixed ``[JOB] ``, on stderr. A line ends
    where the Actions runner ends one (``\n``, ``\r`` or ``\r\n``), so no text of a job starts a line there: a
    job's ``x\r::error::…`` is not a workflow command."""

    lock = threading.Lock()
    breaks = re.compile(rb"\r\n|\r|\n")

    def __init__(self, job_id: str, prefixed: bool, to_stderr: bool):
        self.prefix = f"[{job_id}] ".encode() if prefixed else b""
        self.to_stderr = to_stderr
        self.partial = {1: b"", 2: b""}

    def write(self, stream: int, data: bytes) -> None:
        target = sys.stderr.buffer if stream == 2 or self.to_stderr else sys.stdout.buffer
        if self.prefix:
            text = self.partial[stream] + data
            cut = len(text) - text.endswith(b"\r")  # a \r\n may be split between two reads: one break
            *lines, rest = self.breaks.split(text[:cut])
            self.partial[stream] = rest + text[cut:]
            data = b"".join(self.prefix + line + b"\n" for line in lines)
        with self.lock:
            target.write(data)
            target.flush()

    def close(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self.partial[stream] = b""
                self.write(stream, rest + b"\n")


@dataclass(kw_only=True)
class Job(HostJob):
    plan: JobPlan
    job_id: str
    output: Output
    exit_code: int | None = None
    timed_out: bool = False
    marks: dict[str, float] = field(default_factory=dict)  # time.monotonic() of milestones
    fetched: Fetched | None = None
    ts_key_id: str | None = None
    devices: list[str] = field(default_factory=list)  # its tailnet devices (--tailscale)

    @property
    def workdir(self) -> str:
        return f"{JOBS_DIR}/{self.job_id}"

    @property
    def env_file(self) -> str | None:
        return f"{SECRETS_DIR}/{self.job_id}.env" if self.plan.secrets else None

    def mark(self, what: str) -> None:
        self.marks[what] = time.monotonic()
        self.progress(f"[{self.job_id}] {what} ({self.marks[what] - self.started:.1f} s)")


class Ready:
    """Fallback hosts get the profile's playbooks first; then the host counts as ready."""

    name = "ready"

    def run(self, j: Job) -> None:
        r = j.plan
        if r.mode == "fallback":
            assert j.ip is not None and j.keypair is not None, "Ready follows WaitSSH"
            install_profile(j.ip, j.keypair, j.pin, r.options.profile, r.options.base_image, r.target.local,
                            f"job-{r.run_id}", lambda line: j.progress(f"[{j.job_id}] {line}"), ipv4=r.options.ipv4)
        j.mark("ready")


class StageJob:
    """The work directory (SFTP, modes kept) and the secrets (over the channel, root-only) go in."""

    name = "stage"

    def run(self, j: Job) -> None:
        r = j.plan
        assert j.conn is not None, "StageJob follows WaitSSH"
        user, quoted = r.user, shlex.quote(j.workdir)
        code, out = probe.sh(j.conn, f"install -d -m 0755 {JOBS_DIR} && install -d -m 0700 {quoted}")
        if code != 0:
            raise HostError(f"making the job's directory {j.workdir} failed: {out[-500:]}")
        if r.tree is not None:
            with j.conn.open_sftp() as sftp:
                transfer.upload(sftp, r.tree, j.workdir)
        code, out = probe.sh(j.conn, f"mkdir -p {quoted}/outputs && chown -R {user}:{user} {quoted}")
        if code != 0:
            raise HostError(f"handing {j.workdir} to {user} failed: {out[-500:]}")
        if r.secrets:
            assert j.env_file is not None, "a job with secrets has its environment file"
            secretfile.install(j.conn, j.env_file, r.secrets)
        j.mark("staged")


class Enrol:
    """Only when asked (--tailscale): a single-use key minted for this host, written root-only over the SSH
    channel and removed after `tailscale up`; the key is revoked and the device deleted at the end."""

    name = "tailscale"

    def run(self, j: Job) -> None:
        tn = j.plan.tailnet
        if tn is None:
            return
        assert j.conn is not None and j.server is not None, "Enrol follows WaitSSH"
        j.ts_key_id, secret = tn.mint_auth_key(f"imagekit job {j.job_id}")
        try:
            tailnet.enrol_over_ssh(j.conn, secret, j.resource_name, tn.s.tags)
        except tailnet.TailnetError as exc:
            raise HostError(f"on {j.ip}: {exc}") from None
        j.devices = [d["id"] for d in tn.devices_of(j.resource_name, known(j.server.created, "the server's "
                                                                                              "creation time"))]
        j.mark(f"enrolled in the tailnet as {j.resource_name}")

    def cleanup(self, j: Job) -> None:
        tn = j.plan.tailnet
        if tn is None or j.keep():
            return
        if j.ts_key_id:
            with removing("Tailscale auth key", j.ts_key_id, j.resource_name, tailnet.REVOKE_BY_HAND):
                tn.revoke_key(j.ts_key_id)
        if j.server is not None:
            with removing("Tailscale devices of", j.server.id, j.server.name, tailnet.REMOVE_BY_HAND):
                tn.remove_devices_of(j.server)


class Execute:
    name = "command"

    def run(self, j: Job) -> None:
        r, o = j.plan, j.plan.options
        if o.container_image is not None:
            line = container.command(f"imagekit-job-{j.job_id}", r.user, j.workdir, j.env_file, {"JOB_ID": j.job_id},
                                     sorted(r.secrets.values), o.container_image, o.container_network, o.timeout,
                                     KILL_AFTER, o.command)
        else:
            line = sandbox.command(f"imagekit-job-{j.job_id}", r.user, j.workdir, j.env_file, {"JOB_ID": j.job_id},
                                   r.sandbox, o.timeout, KILL_AFTER, o.command)
        assert j.conn is not None, "Execute follows WaitSSH"
        transport = j.conn.get_transport()
        if transport is None:
            raise HostError(f"the SSH connection to {j.ip} was lost before the command ran")
        channel = transport.open_session()
        channel.exec_command(line)
        channel.shutdown_write()
        j.mark("running")
        hard_stop = time.monotonic() + o.timeout + KILL_AFTER + 60  # the host's own timeout failed to end it
        try:
            while True:
                if j.cancel.is_set():
                    raise KeyboardInterrupt("interrupted (Ctrl-C)")
                busy = False
                if channel.recv_ready():
                    j.output.write(1, channel.recv(65536))
                    busy = True
                if channel.recv_stderr_ready():
                    j.output.write(2, channel.recv_stderr(65536))
                    busy = True
                if busy:
                    continue
                if channel.exit_status_ready():
                    break
                if channel.closed or not channel.get_transport().is_active():
                    raise HostError(f"the SSH connection to {j.ip} was lost while the command ran")
                if time.monotonic() > hard_stop:
                    raise TimeoutError(f"the command did not end within --timeout {o.timeout:g} s and the host did "
                                       "not stop it")
                time.sleep(0.02)
        finally:
            j.output.close()
            channel.close()
        code = channel.recv_exit_status()
        j.mark("finished")
        elapsed = j.marks["finished"] - j.marks["running"]
        j.timed_out = code in (124, 128 + 9) and elapsed >= o.timeout
        j.exit_code = 124 if j.timed_out else code


class FetchOutputs:
    name = "outputs"

    def run(self, j: Job) -> None:
        o = j.plan.options
        if o.outputs is None:
            return
        o.outputs.mkdir(parents=True, exist_ok=True)
        dest = o.outputs / j.job_id
        if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
            dest.rmdir()
        assert j.conn is not None, "FetchOutputs follows WaitSSH"
        with j.conn.open_sftp() as sftp:
            j.fetched = fetched = transfer.download(sftp, f"{j.workdir}/outputs", dest, o.max_output_mb * 2**20)
        fetched["path"] = str(dest)
        j.mark(f"outputs: {fetched['files']} file(s), {fetched['bytes']} bytes in {dest}")


class Outcome:
    """Last: a failed command fails the pipeline, so that --keep-on-failure keeps its server."""

    name = "outcome"

    def run(self, j: Job) -> None:
        if j.exit_code:
            raise CommandFailed("timed out" if j.timed_out else f"exit code {j.exit_code}")


def run_job(r: JobPlan, job_id: str, name: str, output: Output, progress: Callable[[str], None],
            cancel: threading.Event) -> JobResult:
    o = r.options
    timeout = o.ready_timeout or (1800.0 if r.mode == "fallback" else 600.0)
    labels = r.labels(job_id)
    j = Job(client=r.client, progress=progress, resource_name=name, timeout=timeout, cancel=cancel,
            keep_on_failure=o.keep_on_failure, plan=r, job_id=job_id, output=output, labels=labels,
            spec=replace(r.spec, labels=labels))
    steps: list[Step[Job]] = [TemporaryKey(), CreateServer("job server"), Recycled(o.recycle_min), Boot("job server"),
                              WaitSSH(),
                              WaitCloudInit(), Ready(), StageJob(), Enrol(), Execute(), FetchOutputs(), Outcome()]
    error = None
    try:
        run_steps(steps, j, lambda line: progress(f"[{job_id}] {line.strip()}") if line.startswith("==>") else None)
    except StepFailed as exc:
        if not isinstance(exc.cause, CommandFailed):
            error = str(exc)
            progress(f"[{job_id}] failed: {exc}")
    ended = time.monotonic()
    last = max(j.marks.values(), default=j.started)
    return {
        "job_id": job_id, "server_name": name, "server_id": j.server.id if j.server else None,
        "exit_code": j.exit_code if error is None or j.exit_code else None, "timed_out": j.timed_out,
        "error": error, "kept": bool(j.server is not None and j.keep()),
        "seconds": {"create_to_ready": _between(j, "ready"), "run": _span(j, "running", "finished"),
                    "teardown": round(ended - last, 2), "total": round(ended - j.started, 2)},
        "outputs": j.fetched, "tailscale_devices": j.devices, "lifetime_seconds": ended - j.started,
        "location": j.server.location.name if j.server is not None and j.server.location else None,
    }


def _between(j: Job, mark: str) -> float | None:
    return round(j.marks[mark] - j.started, 2) if mark in j.marks else None


def _span(j: Job, first: str, last: str) -> float | None:
    return round(j.marks[last] - j.marks[first], 2) if first in j.marks and last in j.marks else None
