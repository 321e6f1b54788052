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


def _target(token_env=None, token_file=None):
    """The cloud to use (Hetzner with a token, else the local cloud); a bad token source is a clear error."""
    from imagekit import settings, target

    try:
        settings.load()  # a bad config file fails before any work
        return target.resolve(_say, token_env=token_env, token_file=token_file)
    except (target.TargetError, settings.SettingsError) as exc:
        _fail(str(exc))


def _setting(value, name: str):
    """The option if given, else the setting (environment, then config file, then default)."""
    from imagekit import settings

    try:
        return settings.choose(value, name)
    except settings.SettingsError as exc:
        _fail(str(exc))


def _print_json(value) -> None:
    import json as jsonlib

    print(jsonlib.dumps(value, indent=None, default=str))


_TOKEN_HELP = {
    "token_env": "read the Hetzner API token from this environment variable instead of HCLOUD_TOKEN",
    "token_file": "read the Hetzner API token from this file (one line) instead of HCLOUD_TOKEN",
}


@task
def cloud_up(c):
    """Start the local Hetzner-compatible cloud (builds its Debian 12 image the first time, ~2 min)."""
    from localcloud import client as control

    try:
        ep = control.up(progress=_say)
    except control.LocalCloudError as exc:
        _fail(str(exc))
    _say(f"local cloud is up at {ep.endpoint}")


@task
def cloud_down(c):
    """Stop the local cloud and its machines; servers, snapshots and keys are kept for the next cloud-up."""
    from localcloud import client as control

    _say("local cloud stopped" if control.down() else "local cloud was not running")


@task(help={"json": "print one JSON object with at least endpoint and token"})
def cloud_status(c, json=False):
    """Show whether the local cloud runs, its endpoint and API token (use them as HCLOUD_ENDPOINT/HCLOUD_TOKEN)."""
    from localcloud import client as control

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
    from localcloud import client as control

    ep = control.current()
    if ep is None:
        _fail("the local cloud is not running: start it with `invoke cloud-up`")
    print(f"export HCLOUD_ENDPOINT={ep.endpoint} HCLOUD_TOKEN={ep.token}")


@task
def cloud_reset(c):
    """Delete every server, snapshot, SSH key and firewall of the local cloud (keeps its system image)."""
    from localcloud import client as control

    try:
        control.reset()
    except control.LocalCloudError as exc:
        _fail(str(exc))
    _say("local cloud reset: no servers, snapshots, keys or firewalls left")


@task(help={"server_type": "server type (default cx23)", "image": "image name (default debian-12)",
            "location": "location name (default: the API's choice)", "json": "print the result as JSON"})
def roundtrip(c, server_type="cx23", image="debian-12", location=None, json=False):
    """Create a key and a server with user data, SSH in, check cloud-init ran it, delete both."""
    from imagekit.roundtrip import roundtrip as run

    result = run(_target(), server_type=server_type, image=image, location=location, progress=_say)
    if json:
        import json as jsonlib

        print(jsonlib.dumps(result))
    else:
        print(f"round trip ok: SSH after {result['seconds']['ssh']} s, cloud-init done after "
              f"{result['seconds']['cloud_init']} s, total {result['seconds']['total']} s")


@task(help={
    "profile": "image profile (playbooks/<profile>.yml; default agent)",
    "base_image": "base system image (default IMAGEKIT_BASE_IMAGE or debian-12; on Hetzner e.g. ubuntu-24.04)",
    "server_type": "builder server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": "location of the builder (default IMAGEKIT_LOCATION, else the API's choice)",
    "name": "snapshot description template; {profile} and {build_id} are filled in",
    "package_source": "local (distribution + stand-in repos) or vendor (Docker, NodeSource, Tailscale); "
                      "default: local on the local cloud, vendor on Hetzner",
    "json": "print one JSON object (snapshot id, labels, size, durations) on stdout; progress goes to stderr",
    "keep_on_failure": "leave the builder server up on failure and print the ssh command to debug it",
    "ssh_timeout": "seconds the builder may take to accept SSH (default 300)",
})
def build_snapshot(c, profile="agent", base_image=None, server_type=None, location=None,
                   name="imagekit-{profile}-{build_id}", package_source=None, json=False, keep_on_failure=False,
                   ssh_timeout=300):
    """Bake, verify and snapshot the golden image; prints the snapshot id."""
    import json as jsonlib
    import os

    from imagekit import cloudapi
    from imagekit.build import BuildOptions
    from imagekit.build import build_snapshot as build
    from imagekit.pipeline import StepFailed

    options = BuildOptions(profile=profile, base_image=_setting(base_image, "IMAGEKIT_BASE_IMAGE"),
                           server_type=_setting(server_type, "IMAGEKIT_SERVER_TYPE"),
                           location=_setting(location, "IMAGEKIT_LOCATION"), name=name,
                           keep_on_failure=keep_on_failure, package_source=package_source,
                           ssh_timeout=float(ssh_timeout))
    try:
        result = build(_target(), options, _say)
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
    from imagekit import cloudapi
    from imagekit.build import verify_snapshot
    from imagekit.pipeline import StepFailed

    try:
        result = verify_snapshot(_target(), snapshot, server_type, _say)
    except (StepFailed, cloudapi.CloudError) as exc:
        _fail(f"verify: {exc}")
    _say(f"snapshot {result['snapshot_id']} verified")


@task(help={"older_than": "only resources created at least this many minutes ago (default 0: all)",
            "json": "print what was deleted as JSON"})
def gc(c, older_than=0.0, json=False):
    """Delete builder servers and temporary SSH keys left behind by interrupted builds (by label and age)."""
    import json as jsonlib

    from imagekit.gc import collect_garbage

    result = collect_garbage(_target(), float(older_than), _say)
    if json:
        print(jsonlib.dumps(result))
    else:
        _say(f"deleted {len(result['servers'])} builder server(s) and {len(result['ssh_keys'])} key(s)")


@task(iterable=["agent_id"], help={
    "agent_id": "agent id (repeat the option or separate ids by commas); the server is named after it",
    "count": "provision N agents: ID-1..ID-N with one --agent-id, else agent-1..agent-N",
    "mode": "auto (snapshot if one exists, else fallback), snapshot, or fallback (full install on a stock image)",
    "snapshot": "snapshot id (default: HETZNER_SNAPSHOT_ID, else the newest snapshot of the profile)",
    "profile": "image profile (default agent)",
    "server_type": "server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": "location (default IMAGEKIT_LOCATION, else the API's choice)",
    "base_image": "stock image for fallback mode (default IMAGEKIT_BASE_IMAGE or debian-12)",
    "api_url": "the agents' API_URL (default: AURA_API_URL)",
    "agent_bundle": "directory (with index.js) or .tar.gz put in /opt/openclaw/agent (default: the example agent)",
    "no_tailscale": "do not enrol the hosts in Tailscale (no OAuth credentials needed)",
    "no_wait": "return once the servers are created (snapshot mode only)",
    "timeout": "seconds each agent may take to become ready (default 600; 1800 in fallback mode)",
    "parallel": "agents provisioned at once (default 5)",
    "json": "print one JSON object {agents: [...]} on stdout; progress goes to stderr",
    **_TOKEN_HELP,
})
def provision(c, agent_id=None, count=None, mode="auto", snapshot=None, profile="agent", server_type=None,
              location=None, base_image=None, api_url=None, agent_bundle=None, no_tailscale=False,
              no_wait=False, timeout=None, parallel=5, json=False, token_env=None, token_file=None):
    """Turn agent ids into ready agent hosts: from the newest snapshot in seconds, or by full install."""
    from pathlib import Path

    from imagekit import agentid, cloudapi
    from imagekit import provision as prov
    from imagekit.pipeline import StepFailed

    try:
        ids = agentid.expand(list(agent_id or []), int(count) if count is not None else None)
        options = prov.ProvisionOptions(
            agent_ids=ids, mode=mode, snapshot=snapshot, profile=profile,
            server_type=_setting(server_type, "IMAGEKIT_SERVER_TYPE"), location=_setting(location, "IMAGEKIT_LOCATION"),
            base_image=_setting(base_image, "IMAGEKIT_BASE_IMAGE"), api_url=api_url, tailscale=not no_tailscale,
            wait=not no_wait, timeout=float(timeout) if timeout is not None else None, parallel=int(parallel),
            agent_bundle=Path(agent_bundle) if agent_bundle else None)
    except ValueError as exc:
        _fail(f"provision: {exc}")
    try:
        result = prov.provision(_target(token_env, token_file), options, _say)
    except (StepFailed, cloudapi.CloudError) as exc:
        _fail(f"provision: {exc}")
    failed = [a for a in result["agents"] if a["status"] == "failed"]
    if json:
        _print_json(result)
    else:
        for a in result["agents"]:
            took = f"{a['seconds_to_ready']:.1f} s" if a["seconds_to_ready"] is not None else "-"
            print(f"{a['agent_id']:24} {a['status']:9} {str(a['server_id'] or '-'):>10} {a['name']:24} "
                  f"{a['ipv4'] or '-':16} {a['mode'] or '-':9} {took}")
    if failed:
        _fail(f"provision: {len(failed)} of {len(result['agents'])} agent(s) failed: "
              + "; ".join(f"{a['agent_id']}: {a['error']}" for a in failed))


@task(iterable=["agent_id"], help={
    "agent_id": "agent id (repeat the option or separate ids by commas)",
    "selector": "label selector for the agents' servers, e.g. deployment=20261123-abc123",
    "json": "print what was deleted as JSON",
    **_TOKEN_HELP,
})
def deprovision(c, agent_id=None, selector=None, json=False, token_env=None, token_file=None):
    """Delete agents' servers and their Tailscale devices; agents without a server are fine (exit 0)."""
    from imagekit import agentid, cloudapi, fleet, tailnet

    ids = [part.strip() for raw in agent_id or [] for part in raw.split(",") if part.strip()]
    try:
        result = fleet.deprovision(_target(token_env, token_file), ids, selector, _say)
    except (ValueError, agentid.InvalidAgentId, cloudapi.CloudError, tailnet.TailnetError) as exc:
        _fail(f"deprovision: {exc}")
    if json:
        _print_json(result)
    else:
        _say(f"deleted {len(result['deleted'])} server(s) and {len(result['tailscale_devices_deleted'])} "
             "Tailscale device(s)")


@task(name="list", help={"json": "print one JSON object {agents: [...], snapshots: [...]}", **_TOKEN_HELP})
def list_(c, json=False, token_env=None, token_file=None):
    """Show the agent servers and snapshots imagekit manages."""
    from imagekit import fleet

    result = fleet.list_managed(_target(token_env, token_file))
    if json:
        _print_json(result)
        return
    print(f"{'AGENT':24} {'SERVER':>10} {'STATUS':10} {'IPV4':16} {'MODE':9} CREATED")
    for a in result["agents"]:
        print(f"{a['agent_id'] or '-':24} {a['server_id']:>10} {a['status']:10} {a['ipv4'] or '-':16} "
              f"{a['mode'] or '-':9} {a['created']}")
    print(f"\n{'SNAPSHOT':>10} {'PROFILE':10} {'SIZE GB':>8} {'CREATED':26} DESCRIPTION")
    for s in result["snapshots"]:
        print(f"{s['snapshot_id']:>10} {s['profile'] or '-':10} {s['size_gb'] or 0:>8} {s['created']:26} "
              f"{s['description']}")


@task(help={"keep": "snapshots to keep per profile, newest first (default 3)",
            "profile": "only this profile (default: every profile)",
            "dry_run": "say what would be deleted, delete nothing", "json": "print the result as JSON",
            **_TOKEN_HELP})
def prune_snapshots(c, keep=3, profile=None, dry_run=False, json=False, token_env=None, token_file=None):
    """Delete all but the newest N snapshots of each profile."""
    from imagekit import fleet

    try:
        result = fleet.prune_snapshots(_target(token_env, token_file), int(keep), profile, _say, dry_run)
    except ValueError as exc:
        _fail(f"prune-snapshots: {exc}")
    if json:
        _print_json(result)
    else:
        _say(f"{'would delete' if dry_run else 'deleted'} {len(result['deleted'])} snapshot(s)")


@task(help={"agent_id": "the agent whose user data to show",
            "mode": "snapshot (default) or fallback",
            "api_url": "the agents' API_URL (default: AURA_API_URL)",
            "agent_bundle": "directory or .tar.gz of the agent (default: the example agent)",
            "no_tailscale": "leave Tailscale enrolment out"})
def render_cloud_init(c, agent_id, mode="snapshot", api_url=None, agent_bundle=None, no_tailscale=False):
    """Print the cloud-init user data provision would send for an agent (auth key masked); creates nothing."""
    from pathlib import Path

    from imagekit import provision as prov
    from imagekit import settings, tailnet, target

    try:
        settings.load()
        text = prov.render_user_data(agent_id, mode=mode, local=target.token_from() is None, api=api_url,
                                     tailscale=not no_tailscale, agent_bundle=Path(agent_bundle) if agent_bundle
                                     else None)
    except (ValueError, tailnet.TailnetError) as exc:  # bad settings and token sources are ValueErrors too
        _fail(f"render-cloud-init: {exc}")
    print(text, end="")


@task(help={"out": "where to write the JSON figures (a Markdown table goes beside it; default bench/results.json)",
            "runs": "runs per cheap figure (snapshot provisioning, floor); the median is reported (default 3)",
            "fleet": "agents provisioned at once for the concurrency figure (default 10)"})
def bench(c, out="bench/results.json", runs=3, fleet=10):
    """Measure build and provisioning on the local cloud (several minutes); figures to --out and a table."""
    from pathlib import Path

    from imagekit import bench as benchmark
    from imagekit.pipeline import StepFailed

    try:
        benchmark.run(_target(), Path(out), runs=int(runs), fleet_size=int(fleet), progress=_say)
    except (ValueError, RuntimeError, StepFailed) as exc:
        _fail(f"bench: {exc}")
    print(Path(out).with_suffix(".md").read_text())
    _say(f"figures written to {out} (table: {Path(out).with_suffix('.md')})")
