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


@task(help={
    "profile": "image profile (playbooks/<profile>.yml; default agent)",
    "base_image": "base system image (default debian-12; on Hetzner e.g. ubuntu-24.04)",
    "server_type": "builder server type (default cx23)",
    "location": "location of the builder (default: the API's choice)",
    "name": "snapshot description template; {profile} and {build_id} are filled in",
    "package_source": "local (distribution + stand-in repos) or vendor (Docker, NodeSource, Tailscale); "
                      "default: local on the local cloud, vendor on Hetzner",
    "json": "print one JSON object (snapshot id, labels, size, durations) on stdout; progress goes to stderr",
    "keep_on_failure": "leave the builder server up on failure and print the ssh command to debug it",
})
def build_snapshot(c, profile="agent", base_image="debian-12", server_type="cx23", location=None,
                   name="imagekit-{profile}-{build_id}", package_source=None, json=False, keep_on_failure=False):
    """Bake, verify and snapshot the golden image; prints the snapshot id."""
    import json as jsonlib
    import os

    from imagekit import cloudapi, target
    from imagekit.build import BuildOptions
    from imagekit.build import build_snapshot as build
    from imagekit.pipeline import StepFailed

    options = BuildOptions(profile=profile, base_image=base_image, server_type=server_type, location=location,
                           name=name, keep_on_failure=keep_on_failure, package_source=package_source)
    try:
        result = build(target.resolve(_say), options, _say)
    except (StepFailed, cloudapi.CloudError) as exc:
        _fail(f"build-snapshot: {exc}")
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
            fh.write(f"snapshot_id={result['snapshot_id']}\n")
    if json:
        print(jsonlib.dumps(result))
    else:
        _say(f"snapshot {result['snapshot_id']} ({result['description']}) built in {result['seconds']} s")
        print(result["snapshot_id"])


@task(help={"snapshot": "snapshot id, or `latest` for the newest snapshot of the agent profile",
            "server_type": "type of the throw-away server (default cx23)"})
def verify(c, snapshot="latest", server_type="cx23"):
    """Boot a throw-away server from a snapshot, run the image's testinfra suite and clone checks, delete it."""
    from imagekit import cloudapi, target
    from imagekit.build import verify_snapshot
    from imagekit.pipeline import StepFailed

    try:
        result = verify_snapshot(target.resolve(_say), snapshot, server_type, _say)
    except (StepFailed, cloudapi.CloudError) as exc:
        _fail(f"verify: {exc}")
    _say(f"snapshot {result['snapshot_id']} verified")


@task(help={"older_than": "only resources created at least this many minutes ago (default 0: all)",
            "json": "print what was deleted as JSON"})
def gc(c, older_than=0.0, json=False):
    """Delete builder servers and temporary SSH keys left behind by interrupted builds (by label and age)."""
    import json as jsonlib

    from imagekit import target
    from imagekit.gc import collect_garbage

    result = collect_garbage(target.resolve(_say), float(older_than), _say)
    if json:
        print(jsonlib.dumps(result))
    else:
        _say(f"deleted {len(result['servers'])} builder server(s) and {len(result['ssh_keys'])} key(s)")
