"""Running imagekit's tasks as an operator does: `invoke TASK` in the checkout, in a subprocess,
with the environment cleaned of settings the tests must choose themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PLANTED_SECRET = "imagekit-planted-secret-7f3a9c"  # exported to the build; must never reach the image
CHOSEN_BY_TESTS = ("HCLOUD_TOKEN", "HETZNER_API_TOKEN", "HCLOUD_ENDPOINT", "HETZNER_SNAPSHOT_ID", "HETZNER_SSH_KEY_ID",
                   "SSH_PRIVATE_KEY_PATH", "IMAGEKIT_CONFIG", "AURA_API_URL")


def pinned(ip: str):
    """The pin of the server imagekit made at ``ip`` (its host-key label): the tests reach hosts only as imagekit
    does, so every login of theirs also checks that the host shows the key imagekit made for it."""
    from hcloud import Client

    from imagekit.cloud.servers import address
    from imagekit.host import hostkey
    from localcloud import client as localcloud

    ep = localcloud.current()
    [server] = [s for s in Client(token=ep.token, api_endpoint=ep.endpoint).servers.get_all()
                if address(s) == ip and s.status != "deleting"]
    return hostkey.pin(server)


def environment(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CHOSEN_BY_TESTS and not k.startswith("TAILSCALE_")}
    env.update(extra or {})
    return env


API_URL = "https://agents.example.test/api"  # the agents' API; nothing answers there, agents only carry it


def agent_env(operator_key, **extra: str) -> dict:
    """What provisioning needs from an operator: their SSH key (the way into the hosts) and the agents' API."""
    return {"HETZNER_SSH_KEY_ID": str(operator_key.id), "AURA_API_URL": API_URL, **extra}


def invoke(*args: str, env_extra: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=environment(env_extra), text=True,
                          capture_output=True, timeout=timeout)


def start(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
    """A task running in the background, in its own session (so a test can signal the whole group), taking
    Ctrl-C as a terminal's task does whatever the test run inherited: a suite started as a shell's background
    job (`cmd &`) has SIGINT ignored, and a Python started so installs no KeyboardInterrupt handler."""
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=environment(env_extra), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_interruptible)


def output_so_far(proc: subprocess.Popen) -> str:
    """What a background task (``start``) has written to stdout so far, read without blocking (a single job
    streams its output raw)."""
    import select

    seen = getattr(proc, "seen", "")
    while select.select([proc.stdout], [], [], 0)[0]:
        chunk = os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
        if not chunk:
            break
        seen += chunk
    proc.seen = seen  # type: ignore[attr-defined]
    return seen


def _interruptible() -> None:
    """In the child, before it runs Python: SIGINT back to its default, so Python turns it into Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
