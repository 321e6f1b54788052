"""``run``'s options, and every check that can fail before a server exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, TypeVarTuple

from .. import agentid
from ..cloud import networks
from ..errors import InputError
from .transfer import Tree, scan_workdir

MODES = ("auto", "snapshot", "fallback")


@dataclass
class JobOptions:
    job_ids: list[str]
    command: list[str]
    snapshot: str = "latest"
    mode: str = "auto"
    profile: str = "agent"
    server_type: str = "cx23"
    location: str | None = None
    base_image: str = "debian-12"
    workdir: Path | None = None
    outputs: Path | None = None
    timeout: float = 3600.0  # seconds COMMAND may run
    ready_timeout: float | None = None  # seconds until the host answers SSH (default 600; 1800 in fallback mode)
    secrets_file: Path | None = None
    keep_on_failure: bool = False
    tailscale: bool = False  # enrol the job's host in the tailnet (a single-use key over SSH; device removed after)
    max_upload_mb: int = 256
    max_output_mb: int = 1024
    parallel: int = 5
    run_id: str | None = None  # labels the jobs' servers and keys (``gc --run``); default: a new one
    labels: dict[str, str] = field(default_factory=dict)  # the operator's own, on every job's server and key
    ipv4: bool = True  # a public IPv4 on every job's server; off: IPv6 only, reached over IPv6 (cloud.family)
    container_image: str | None = None  # run COMMAND in a container of this image, baked into the snapshot
    container_network: bool = False  # the container gets Docker's bridge network (default: none)
    ttl: float | None = None  # seconds a job's server lives at most (imagekit.ttl): gc deletes it after
    recycle_min: int = 0  # minutes left of its paid hour for which a finished job's server is recycled (pool/recycle)
    networks: tuple[str, ...] = ()  # private networks every job's server joins; ssh_via private: reached there
    ssh_via: str = "public"


def check_options(o: JobOptions) -> Tree | None:
    """What is wrong with the options alone (no API needed); the scanned work directory."""
    if not o.command:
        raise InputError("no command: put it after `--`, e.g. `invoke run --job-id build-1 -- make test`")
    if o.mode not in MODES:
        raise InputError(f"--mode {o.mode!r}: choose one of {', '.join(MODES)}")
    if o.container_image is not None and o.mode == "fallback":
        raise InputError(f"--container-image {o.container_image}: a container runs an image baked into the snapshot; "
                         "a fallback host has none (drop --mode fallback)")
    if o.container_network and o.container_image is None:
        raise InputError("--container-network goes with --container-image")
    for option, value in (("--timeout", o.timeout), ("--ready-timeout", o.ready_timeout)):
        if value is not None and value <= 0:
            raise InputError(f"{option} {value:g}: give a number of seconds above 0")
    for option, value in (("--max-upload-mb", o.max_upload_mb), ("--max-output-mb", o.max_output_mb),
                          ("--parallel", o.parallel)):
        if value < 1:
            raise InputError(f"{option} {value}: give at least 1")
    for job in o.job_ids:
        job_name(job)
    networks.check(o.networks, o.ssh_via)
    if o.outputs is not None:
        if o.outputs.exists() and not o.outputs.is_dir():
            raise InputError(f"--outputs {o.outputs}: exists and is not a directory")
        for job in o.job_ids:
            dest = o.outputs / job
            if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
                raise InputError(f"--outputs {o.outputs}: {dest} exists and is not empty; move it away or choose "
                                 "another directory (a job's outputs land in DIR/JOB_ID)")
    return scan_workdir(o.workdir, o.max_upload_mb * 2**20) if o.workdir is not None else None


PREFIX = "imagekit-job-"


def job_name(job_id: str) -> str:
    """The job's server name: job ids follow agent ids' rules (a hostname and a label value)."""
    name = PREFIX + _as_job(agentid.server_name, job_id)
    if len(name) > agentid.MAX_LENGTH:
        raise InputError(f"job id {job_id[:20]!r}... is too long: at most {agentid.MAX_LENGTH - len(PREFIX)} "
                         "characters")
    return name


def expand(job_ids: list[str], count: int | None) -> list[str]:
    """The jobs to run: each ``--job-id`` (or comma-separated ids), or ``--count N`` numbered ones."""
    ids = _as_job(agentid.expand, job_ids, count)
    for job in ids:
        job_name(job)
    return ids


Args = TypeVarTuple("Args")
R = TypeVar("R")


def _as_job(check: Callable[[*Args], R], *args: *Args) -> R:
    """agentid's checks, worded for jobs."""
    try:
        return check(*args)
    except agentid.InvalidAgentId as exc:
        text = str(exc).replace("agent id", "job id").replace("--agent-id", "--job-id").replace("agent", "job")
        raise InputError(text) from None
