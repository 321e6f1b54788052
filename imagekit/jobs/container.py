"""A job's command as a container of an image baked into the snapshot (``run --container-image``).

imagekit runs ``docker run`` as root over its own SSH connection: the profile's user never gets Docker's socket
(root by another name). The container runs as that user's uid, with every capability dropped, no new
privileges, a read-only root (a small /tmp in memory), no network unless asked, a pids limit, and ``--pull never``
(a host that reaches no registry runs it all the same, and a missing image is an error, never a download). The
job's work directory, ``outputs/`` inside it, is mounted at /work. ``timeout(1)`` gives 124 as for commands; the
container is removed by name whatever happened (the CLI may be killed before ``--rm`` acts)."""

from __future__ import annotations

import shlex

WORKDIR = "/work"
PIDS_LIMIT = 256
TMPFS = "/tmp:rw,nosuid,nodev,noexec,size=64m"


def command(name: str, user: str, workdir: str, env_file: str | None, env: dict[str, str], secret_names: list[str],
            image: str, network: bool, timeout: float, kill_after: float, argv: list[str]) -> str:
    """The shell line (run as root) whose output is the container's and whose exit status is its own. Secrets
    reach the container by name from the environment file (read by the shell, never on a command line)."""
    args = ["docker", "run", "--rm", f"--name={name}", "--pull=never", "--cap-drop=ALL",
            "--security-opt=no-new-privileges", "--read-only", f"--tmpfs={TMPFS}",
            f"--network={'bridge' if network else 'none'}", f"--pids-limit={PIDS_LIMIT}",
            f"--volume={workdir}:{WORKDIR}", f"--workdir={WORKDIR}"]
    args += [f"--env={k}={v}" for k, v in env.items()] + [f"--env={k}" for k in secret_names]
    user_q, name_q = shlex.quote(user), shlex.quote(name)
    load = f"set -a && . {shlex.quote(env_file)} && set +a && " if env_file else ""
    return (f'{load}uid="$(id -u {user_q}):$(id -g {user_q})" && /usr/bin/timeout --kill-after={kill_after:g} '
            f'{timeout:g} {shlex.join(args)} --user="$uid" {shlex.quote(image)} {shlex.join(argv)} </dev/null; '
            f"rc=$?; docker rm --force {name_q} >/dev/null 2>&1; exit $rc")
