"""The one-shot jobs' task: ``run`` a command on fresh hosts from the snapshot."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, task

from .. import settings
from .shared import (
    LABEL_HELP,
    LOCATION_HELP,
    NETWORK_HELP,
    RECYCLE_HELP,
    RUN_ID_HELP,
    TOKEN_HELP,
    given_flag,
    number,
    path,
    run,
    say,
    whole_number,
)


@task(name="run", iterable=["job_id", "label", "network"], auto_shortflags=False, help={
    "job_id": "job id (repeat the option or separate ids by commas): one fresh host per job, run at once",
    "count": "run N jobs: ID-1..ID-N with one --job-id, else job-1..job-N",
    "snapshot": "snapshot id, or `latest` (default) for the newest of the profile",
    "mode": "auto (the snapshot if one exists, else a full install), snapshot, or fallback",
    "profile": "image profile (default agent); the command gets its agent's sandbox",
    "server_type": "server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": LOCATION_HELP,
    "base_image": "stock image for fallback mode (default IMAGEKIT_BASE_IMAGE or debian-12)",
    "workdir": "directory uploaded to the host (modes kept) as the command's working directory",
    "outputs": "where what the command leaves in outputs/ lands: DIR/JOB_ID (links leaving it are refused)",
    "timeout": "seconds the command may run; then it is stopped and the exit code is 124 (default 3600)",
    "ready_timeout": "seconds the host may take to answer SSH (default 600; 1800 in fallback mode)",
    "secrets_file": "dotenv file whose values reach the command's environment over SSH (default "
                    "IMAGEKIT_SECRETS_FILE); never in user data, logs or output",
    "keep_on_failure": "keep the host of a failed job and print the ssh command to debug it (`invoke gc` later)",
    "tailscale": "enrol the job's host in the tailnet (single-use key over SSH; its device is deleted after)",
    "max_upload_mb": "largest work directory, MiB (default 256)",
    "max_output_mb": "largest outputs/, MiB (default 1024)",
    "parallel": "jobs run at once (default 5)",
    "json": "print one JSON object {exit_code, jobs: [...]} on stdout; the command's output goes to stderr",
    "run_id": RUN_ID_HELP,
    "label": LABEL_HELP,
    "ipv4": "--ipv4 / --no-ipv4: a public IPv4 on every job's server, or IPv6-only servers reached over IPv6, which "
            "needs an IPv6 route from this machine (default IMAGEKIT_IPV4, else --ipv4)",
    "container_image": "run COMMAND in a container of this image, which must be baked into the snapshot (the "
                       "profile's `images:`; else refused before anything is created): as the profile's user's uid, "
                       "all capabilities dropped, no new privileges, read-only root, a pids limit, the work "
                       "directory (with outputs/) at /work",
    "container_network": "give the container Docker's bridge network (default: no network)",
    "ttl": "how long a job's host may live at most, e.g. 90m, 4h, 2d (units s, m, h, d): its `expires-at` label; "
           "`invoke gc` deletes it once that has passed, even while the job runs (a bound on top of --timeout)",
    "recycle_min": RECYCLE_HELP,
    **NETWORK_HELP,
    **TOKEN_HELP,
})
def run_(c: Context, job_id: list[str] | None = None, count: str | None = None, snapshot: str = "latest",
         mode: str = "auto", profile: str = "agent", server_type: str | None = None, location: str | None = None,
         base_image: str | None = None, workdir: str | None = None, outputs: str | None = None,
         timeout: str | None = None, ready_timeout: str | None = None, secrets_file: str | None = None,
         keep_on_failure: bool = False, tailscale: bool = False, max_upload_mb: int = 256, max_output_mb: int = 1024,
         parallel: int = 5, run_id: str | None = None, json: bool = False, container_image: str | None = None,
         container_network: bool = False, token_env: str | None = None, token_file: str | None = None,
         ttl: str | None = None, label: list[str] | None = None, ipv4: bool = True, network: list[str] | None = None,
         ssh_via: str | None = None, recycle_min: str | None = None) -> None:
    """Run a command once on a fresh host from the snapshot: `invoke run --job-id ID [options] -- COMMAND [ARGS]`.

    The host is deleted whatever happens (success, failing command, timeout, Ctrl-C, SIGTERM, SIGHUP), or recycled
    into the warm pool when it has at least --recycle-min minutes left of its paid hour and the pool is below its
    size (needs HETZNER_SSH_KEY_ID and SSH_PRIVATE_KEY_PATH). The exit code is the command's (124 on timeout), or
    125 when a job's server or key could not be removed: a warning line names each and the command that removes it
    (with --json also under "leftovers")."""
    from .. import runid
    from .. import ttl as ttls
    from ..cloud import userlabels
    from ..jobs import JobOptions, run_jobs
    from ..jobs.options import expand
    from ..pool import recycle

    def options() -> JobOptions:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
        networks, via = settings.networks(network, ssh_via)
        return JobOptions(
            job_ids=expand(list(job_id or []), whole_number("--count", count)), command=argv, snapshot=snapshot,
            mode=mode, profile=profile, server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
            location=settings.choose(location, "IMAGEKIT_LOCATION"),
            base_image=settings.choose(base_image, "IMAGEKIT_BASE_IMAGE"),
            workdir=Path(workdir) if workdir else None, outputs=Path(outputs) if outputs else None,
            timeout=3600.0 if timeout is None else number("--timeout", timeout),
            ready_timeout=number("--ready-timeout", ready_timeout),
            secrets_file=path(settings.choose(secrets_file, "IMAGEKIT_SECRETS_FILE")), keep_on_failure=keep_on_failure,
            tailscale=tailscale, max_upload_mb=whole_number("--max-upload-mb", max_upload_mb),
            max_output_mb=whole_number("--max-output-mb", max_output_mb),
            parallel=whole_number("--parallel", parallel), run_id=runid.given(run_id),
            container_image=container_image, container_network=container_network, ttl=ttls.parse(ttl),
            labels=userlabels.parse(label or []), ipv4=settings.ipv4(given_flag("ipv4", ipv4)), networks=networks,
            ssh_via=via, recycle_min=recycle.minimum(recycle_min))

    result = run("run", lambda t, o: run_jobs(t, o, say, json=json), prepare=options, json=json,
                 token_env=token_env, token_file=token_file)
    sys.exit(result["exit_code"])  # the command's own (124 on timeout), so scripts can act on it
