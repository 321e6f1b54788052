"""imagekit's operator commands. Each task parses its options and calls into ``imagekit``.

Without HCLOUD_TOKEN every task uses the local cloud (started on demand).
"""

from __future__ import annotations

import sys

from invoke import task


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _fail(msg: str) -> None:
    _say(f"error: {msg}")
    sys.exit(1)


@task
def cloud_up(c):
    """Start the local Hetzner-compatible cloud (builds its Debian 12 image the first time, ~2 min)."""
    from imagekit.localcloud import control

    try:
        ep = control.up(progress=_say)
    except control.LocalCloudError as exc:
        _fail(str(exc))
    _say(f"local cloud is up at {ep.endpoint}")


@task
def cloud_down(c):
    """Stop the local cloud and its machines; servers, snapshots and keys are kept for the next cloud-up."""
    from imagekit.localcloud import control

    _say("local cloud stopped" if control.down() else "local cloud was not running")


@task(help={"json": "print one JSON object with at least endpoint and token"})
def cloud_status(c, json=False):
    """Show whether the local cloud runs, its endpoint and API token (use them as HCLOUD_ENDPOINT/HCLOUD_TOKEN)."""
    from imagekit.localcloud import control

    st = control.status()
    if json:
        import json as jsonlib

        print(jsonlib.dumps(st))
    elif not st["running"]:
        print(f"local cloud: not running (state in {st['state_dir']}); start it with `invoke cloud-up`")
    else:
        for key in ("endpoint", "token", "state_dir", "btrfs", "servers", "tailscale_standin_api"):
            print(f"{key:24} {st[key]}")
    if not st["running"] and json:
        sys.exit(1)


@task
def cloud_env(c):
    """Print `export HCLOUD_ENDPOINT=... HCLOUD_TOKEN=...` for the local cloud (use with eval)."""
    from imagekit.localcloud import control

    ep = control.current()
    if ep is None:
        _fail("the local cloud is not running: start it with `invoke cloud-up`")
    print(f"export HCLOUD_ENDPOINT={ep.endpoint} HCLOUD_TOKEN={ep.token}")


@task
def cloud_reset(c):
    """Delete every server, snapshot, SSH key and firewall of the local cloud (keeps its system image)."""
    from imagekit.localcloud import control

    try:
        control.reset()
    except control.LocalCloudError as exc:
        _fail(str(exc))
    _say("local cloud reset: no servers, snapshots, keys or firewalls left")


@task(help={"server_type": "server type (default cx23)", "image": "image name (default debian-12)",
            "location": "location name (default: the API's choice)", "json": "print the result as JSON"})
def roundtrip(c, server_type="cx23", image="debian-12", location=None, json=False):
    """Create a key and a server with user data, SSH in, check cloud-init ran it, delete both."""
    from imagekit import target
    from imagekit.roundtrip import roundtrip as run

    result = run(target.resolve(_say), server_type=server_type, image=image, location=location, progress=_say)
    if json:
        import json as jsonlib

        print(jsonlib.dumps(result))
    else:
        print(f"round trip ok: SSH after {result['seconds']['ssh']} s, cloud-init done after "
              f"{result['seconds']['cloud_init']} s, total {result['seconds']['total']} s")
