"""imagekit's operator commands, as Invoke tasks: ``invoke TASK`` in a checkout, ``imagekit TASK``
once installed. Each task parses its options and calls one function of the toolkit through
``command.run``, the one place that picks the target, reports errors (``error: …``, exit 1) and
prints JSON when asked. Without HCLOUD_TOKEN every task uses the local cloud (started on demand).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection, task

from . import settings
from .command import TOKEN_HELP as _TOKEN_HELP
from .command import number, run, say, whole_number
from .events import check_destination as check_events

_LOCATION_HELP = ("a location, or locations tried in order when one has no capacity (fsn1,nbg1,hel1); the server's "
                  "`location` label records where it landed (default IMAGEKIT_LOCATION, else the API's choice)")

# --- the local cloud ---------------------------------------------------------------------------


@task
def cloud_up(c):
    """Start the local Hetzner-compatible cloud (builds its Debian 12 image the first time, ~2 min)."""
    from localcloud import client as localcloud

    ep = run("cloud-up", lambda _: {"endpoint": localcloud.up(progress=say).endpoint}, target=False)
    say(f"local cloud is up at {ep['endpoint']}")


@task
def cloud_down(c):
    """Stop the local cloud and its machines; servers, snapshots and keys are kept for the next cloud-up."""
    from localcloud import client as localcloud

    run("cloud-down", lambda _: {"stopped": localcloud.down()}, target=False,
         text=lambda r: "local cloud stopped" if r["stopped"] else "local cloud was not running")


@task(help={"json": "print one JSON object with at least endpoint and token"})
def cloud_status(c, json=False):
    """Show whether the local cloud runs, its endpoint and API token (use them as HCLOUD_ENDPOINT/HCLOUD_TOKEN)."""
    from localcloud import client as localcloud

    def text(st: dict) -> str:
        if not st["running"]:
            return f"local cloud: not running (state in {st['state_dir']}); start it with `invoke cloud-up`"
        keys = ("endpoint", "token", "state_dir", "btrfs", "servers", "tailscale_standin_api")
        return "\n".join(f"{key:24} {st[key]}" for key in keys)

    run("cloud-status", lambda _: localcloud.status(), json=json, text=text, target=False,
         failed=lambda st: None if st["running"] or not json else "the local cloud is not running")


@task
def cloud_env(c):
    """Print `export HCLOUD_ENDPOINT=... HCLOUD_TOKEN=...` for the local cloud (use with eval)."""
    from localcloud import client as localcloud

    def env(_):
        ep = localcloud.running()
        return {"endpoint": ep.endpoint, "token": ep.token}

    run("cloud-env", env, target=False, text=lambda r: f"export HCLOUD_ENDPOINT={r['endpoint']} "
                                                         f"HCLOUD_TOKEN={r['token']}")


@task
def cloud_reset(c):
    """Delete every server, snapshot, SSH key and firewall of the local cloud (keeps its system image)."""
    from localcloud import client as localcloud

    run("cloud-reset", lambda _: localcloud.reset(), target=False)
    say("local cloud reset: no servers, snapshots, keys or firewalls left")


# --- images ------------------------------------------------------------------------------------


@task(help={"server_type": "server type (default cx23)", "image": "image name (default debian-12)",
            "location": _LOCATION_HELP, "json": "print the result as JSON",
            **_TOKEN_HELP})
def roundtrip(c, server_type="cx23", image="debian-12", location=None, json=False, token_env=None, token_file=None):
    """Create a key and a server with user data, SSH in, check cloud-init ran it, delete both."""
    from .roundtrip import roundtrip

    run("roundtrip", lambda t: roundtrip(t, server_type=server_type, image=image, location=location, progress=say),
         json=json, token_env=token_env, token_file=token_file,
         text=lambda r: f"round trip ok: SSH after {r['seconds']['ssh']} s, cloud-init done after "
                        f"{r['seconds']['cloud_init']} s, total {r['seconds']['total']} s")


@task(help={
    "profile": "image profile (playbooks/<profile>.yml; default agent)",
    "base_image": "base system image (default IMAGEKIT_BASE_IMAGE or debian-12; on Hetzner e.g. ubuntu-24.04)",
    "server_type": "builder server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": "location of the builder: " + _LOCATION_HELP,
    "name": "snapshot description template; {profile} and {build_id} are filled in",
    "package_source": "local (distribution + the local cloud's repo: Tailscale stand-in, Node.js) or vendor (Docker, "
                      "NodeSource, Tailscale); default: local on the local cloud, vendor on Hetzner",
    "json": "print one JSON object (snapshot id, labels, size, durations, reused, inputs_hash) on stdout; progress "
            "goes to stderr",
    "keep_on_failure": "leave the builder server up on failure and print the ssh command (with its key file) "
                       "to debug it",
    "ssh_timeout": "seconds the builder may take to accept SSH and finish cloud-init (default 300)",
    "events": "write live events (one JSON object per line, schema in the README) to this file; - for stdout",
    "force": "build even if a snapshot of the same inputs (its inputs-hash label) is younger than --max-age",
    "max_age": "days a snapshot of the same inputs is reused for instead of building (default 7, so that "
               "security updates still arrive weekly)",
    "from": "grow from a snapshot of the profile (`latest` or an id) instead of the base image: packages upgraded, "
            "the idempotent playbooks re-run (only changes do work), checked, cleaned; labelled parent-snapshot",
    **_TOKEN_HELP,
})
def build_snapshot(c, profile="agent", base_image=None, server_type=None, location=None,
                   name="imagekit-{profile}-{build_id}", package_source=None, json=False, keep_on_failure=False,
                   ssh_timeout=300, events=None, force=False, max_age=None, from_=None, token_env=None,
                   token_file=None):
    """Bake, verify and snapshot the golden image; prints the snapshot id. A snapshot of the same inputs younger
    than --max-age is reused instead (nothing is built) unless --force."""
    from .build import BuildOptions, build_snapshot

    def build(target):
        check_events(events, json)
        days = BuildOptions.max_age if max_age is None else number("--max-age", max_age, "days")
        options = BuildOptions(profile=profile, base_image=settings.choose(base_image, "IMAGEKIT_BASE_IMAGE"),
                               server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
                               location=settings.choose(location, "IMAGEKIT_LOCATION"), name=name,
                               keep_on_failure=keep_on_failure, package_source=package_source,
                               ssh_timeout=number("--ssh-timeout", ssh_timeout), events=events, force=force,
                               max_age=days, parent=from_)
        result = build_snapshot(target, options, say)
        if os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
                fh.write(f"snapshot_id={result['snapshot_id']}\n")
        done = "reused" if result["reused"] else f"built in {result['seconds']} s"
        say(f"snapshot {result['snapshot_id']} ({result['description']}) {done}")
        return result

    run("build-snapshot", build, json=json, text=lambda r: str(r["snapshot_id"]), token_env=token_env,
         token_file=token_file)


@task(help={"snapshot": "snapshot id, or `latest` for the newest available snapshot of the profile",
            "profile": "the profile `latest` picks from (default agent)",
            "server_type": "type of the throw-away server (default cx23)", **_TOKEN_HELP})
def verify(c, snapshot="latest", profile="agent", server_type="cx23", token_env=None, token_file=None):
    """Boot a throw-away server from a snapshot, run the image's testinfra checks and clone checks, delete it."""
    from .verify import verify_snapshot

    result = run("verify", lambda t: verify_snapshot(t, snapshot, server_type, say, profile=profile),
                  token_env=token_env, token_file=token_file)
    say(f"snapshot {result['snapshot_id']} verified")


@task(help={"older_than": "only resources created at least this many minutes ago (default 0: all)",
            "role": "builder (builds' and verifications' servers and keys), provision (provisioning runs' keys "
                    "and half-made agent servers whose run died), job (jobs' servers and keys past their "
                    "deadline), pool (pool hosts a killed fill left half-made) or all (default)",
            "json": "print what was deleted as JSON", **_TOKEN_HELP})
def gc(c, older_than=0.0, role="all", json=False, token_env=None, token_file=None):
    """Delete builder servers, half-made agent servers, job servers and temporary SSH keys left by interrupted runs."""
    from .fleet.gc import collect_garbage

    run("gc", lambda t: collect_garbage(t, number("--older-than", older_than), say, role), json=json,
        token_env=token_env,
         token_file=token_file,
         text=lambda r: say(f"deleted {len(r['servers'])} builder server(s), {len(r['agent_servers'])} half-made "
                            f"agent server(s), {len(r['job_servers'])} job server(s), {len(r['pool_servers'])} "
                            f"half-made pool host(s) and {len(r['ssh_keys'])} key(s)"))


@task(help={"keep": "snapshots to keep per profile, newest first (default 3)",
            "profile": "only this profile (default: every profile)",
            "dry_run": "say what would be deleted, delete nothing", "json": "print the result as JSON",
            **_TOKEN_HELP})
def prune_snapshots(c, keep=3, profile=None, dry_run=False, json=False, token_env=None, token_file=None):
    """Delete all but the newest N snapshots of each profile."""
    from .fleet.prune import prune_snapshots as prune

    run("prune-snapshots", lambda t: prune(t, whole_number("--keep", keep), profile, say, dry_run), json=json,
        token_env=token_env, token_file=token_file,
        text=lambda r: say(f"{'would delete' if dry_run else 'deleted'} {len(r['deleted'])} snapshot(s)"))


# --- agents ------------------------------------------------------------------------------------


@task(iterable=["agent_id"], help={
    "agent_id": "agent id (repeat the option or separate ids by commas); the server is named after it",
    "count": "provision N agents: ID-1..ID-N with one --agent-id, else agent-1..agent-N",
    "mode": "auto (snapshot if one exists, else fallback), snapshot, or fallback (full install on a stock image)",
    "snapshot": "snapshot id (default: HETZNER_SNAPSHOT_ID, else the newest of the profile); `latest` for the newest",
    "profile": "image profile (default agent)",
    "server_type": "server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": _LOCATION_HELP,
    "base_image": "stock image for fallback mode (default IMAGEKIT_BASE_IMAGE or debian-12)",
    "api_url": "the agents' API_URL (default: AURA_API_URL)",
    "agent_bundle": "directory (with the profile's entrypoint, index.js for agents) or .tar.gz put in the profile's "
                    "code directory (/opt/openclaw/agent for agents; default: the profile's example bundle)",
    "no_tailscale": "do not enrol the hosts in Tailscale (no OAuth credentials needed)",
    "no_wait": "return once the servers are created (snapshot mode only)",
    "timeout": "seconds each agent may take to become ready (default 600; 1800 in fallback mode)",
    "parallel": "agents provisioned at once (default 5)",
    "secrets_file": "dotenv file whose values reach each agent's environment over SSH, in the profile's "
                    "secrets.env (/opt/openclaw/config/ for agents; default IMAGEKIT_SECRETS_FILE); never in user "
                    "data or logs",
    "json": "print one JSON object {agents: [...]} on stdout; progress goes to stderr",
    "events": "write live events (one JSON object per line, schema in the README) to this file; - for stdout",
    "no_pool": "create every agent's server cold, even when warm pool hosts are there",
    "refill": "afterwards, top the warm pool up to the size it had (needs SSH_PRIVATE_KEY_PATH)",
    **_TOKEN_HELP,
})
def provision(c, agent_id=None, count=None, mode="auto", snapshot=None, profile="agent", server_type=None,
              location=None, base_image=None, api_url=None, agent_bundle=None, no_tailscale=False,
              no_wait=False, timeout=None, parallel=5, secrets_file=None, json=False, events=None, no_pool=False,
              refill=False, token_env=None, token_file=None):
    """Turn agent ids into ready agent hosts: a warm pool host in about a second, else the newest snapshot in
    seconds, else a full install. Pool hosts are claimed with your key (SSH_PRIVATE_KEY_PATH) when it is set."""
    from . import agentid
    from .provision import ProvisionOptions, provision
    from .provision.inputs import check_options

    def options() -> ProvisionOptions:
        check_events(events, json)
        return check_options(ProvisionOptions(
            agent_ids=agentid.expand(list(agent_id or []), whole_number("--count", count)), mode=mode,
            snapshot=snapshot, profile=profile, server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
            location=settings.choose(location, "IMAGEKIT_LOCATION"),
            base_image=settings.choose(base_image, "IMAGEKIT_BASE_IMAGE"), api_url=api_url,
            tailscale=not no_tailscale, wait=not no_wait, timeout=number("--timeout", timeout),
            parallel=whole_number("--parallel", parallel), agent_bundle=Path(agent_bundle) if agent_bundle else None,
            secrets_file=_path(settings.choose(secrets_file, "IMAGEKIT_SECRETS_FILE")), events=events,
            pool=not no_pool, refill=refill))

    def row(a: dict) -> str:
        took = f"{a['seconds_to_ready']:.1f} s" if a["seconds_to_ready"] is not None else "-"
        return (f"{a['agent_id']:24} {a['status']:9} {str(a['server_id'] or '-'):>10} {a['name']:24} "
                f"{a['ipv4'] or '-':16} {a['mode'] or '-':9} {took}")

    def failed(r: dict) -> str | None:
        bad = [a for a in r["agents"] if a["status"] == "failed"]
        return (f"{len(bad)} of {len(r['agents'])} agent(s) failed: "
                + "; ".join(f"{a['agent_id']}: {a['error']}" for a in bad)) if bad else None

    run("provision", lambda t, o: provision(t, o, say), prepare=options, json=json, failed=failed,
         text=lambda r: "\n".join(row(a) for a in r["agents"]),
         token_env=token_env, token_file=token_file)


@task(iterable=["agent_id"], help={
    "agent_id": "agent id (repeat the option or separate ids by commas)",
    "selector": "label selector for the agents' servers, e.g. deployment=20261123-abc123",
    "json": "print what was deleted as JSON",
    **_TOKEN_HELP,
})
def deprovision(c, agent_id=None, selector=None, json=False, token_env=None, token_file=None):
    """Delete agents' servers and their Tailscale devices; agents without a server are fine (exit 0)."""
    from .fleet.deprovision import deprovision

    run("deprovision", lambda t, i: deprovision(t, i, selector, say), prepare=lambda: _agent_ids(agent_id), json=json,
        token_env=token_env, token_file=token_file,
        text=lambda r: say(f"deleted {len(r['deleted'])} server(s) and {len(r['tailscale_devices_deleted'])} "
                             "Tailscale device(s)"))


@task(iterable=["agent_id"], help={
    "agent_id": "only these agents (repeat the option or separate ids by commas); default: every agent",
    "selector": "only the agents whose servers match this label selector, e.g. deployment=20261123-abc123",
    "json": "print one JSON object {agents: [{agent_id, server_id, healthy (true, false, or null: unchecked), "
            "service, restarts, tailscale_online, snapshot_id, newest_snapshot_id, drift, provisioned_at, "
            "hourly_cost_gross, problems, unchecked}], missing}; with --watch one object per change or alert",
    "api_only": "check only what the cloud API and the tailnet say, deliberately without SSH (no key needed)",
    "watch": "check again every SECONDS until Ctrl-C or SIGTERM, printing only changes; deletes nothing",
    "alert_after": "with --watch: alert once an agent failed this many checks in a row (default 3)",
    "alert_command": "with --watch: shell command run on each alert and recovery, the event as JSON on stdin",
    "webhook": "with --watch: http(s) URL each alert and recovery is POSTed to, as JSON",
    "api_every": "with --watch: seconds between reads of the cloud API and the tailnet (default 300); between them "
                 "the hosts are checked over SSH only",
    "parallel": "hosts checked over SSH at once (default 10)",
    "metrics": "write the fleet's health and cost to this file in Prometheus' text format, for node-exporter's "
               "textfile collector (after every check with --watch)",
    **_TOKEN_HELP,
})
def status(c, agent_id=None, selector=None, json=False, api_only=False, watch=None, alert_after=None,
           alert_command=None, webhook=None, api_every=None, parallel=10, metrics=None, token_env=None,
           token_file=None):
    """Each agent's health: server, SSH, openclaw-agent, Tailscale, snapshot drift; exit 1 if any is unhealthy,
    unchecked (a check could not be made: no key, SSH refused) or not found.

    The services are read over SSH with SSH_PRIVATE_KEY_PATH (your key, the private half of HETZNER_SSH_KEY_ID).
    --watch SECONDS keeps checking, prints changes and alerts (--alert-command, --webhook)."""
    from .fleet.status import fleet_status, verdict
    from .fleet.watch import watch_fleet, watch_options

    def options():
        return _agent_ids(agent_id), watch_options(watch, alert_after, alert_command, webhook, api_every,
                                                   whole_number("--parallel", parallel), api_only, metrics, json)

    def check(t, prepared) -> dict:
        ids, watching = prepared
        if watching:
            return watch_fleet(t, ids, selector, watching, say)
        return fleet_status(t, ids, selector, say, api_only=api_only, parallel=whole_number("--parallel", parallel),
                            metrics_file=_path(metrics))

    def text(r: dict) -> str:
        if "sweeps" in r:
            return (f"watch ended: {r['sweeps']} check(s), {r['api_refreshes']} API read(s), {r['alerts']} alert(s), "
                    f"{r['recoveries']} recovery(ies)")
        lines = [f"{'AGENT':24} {'HEALTHY':9} {'SERVER':>10} {'SERVICE':10} {'RESTARTS':>8} {'TAILSCALE':9} "
                 f"{'SNAPSHOT':>10} DRIFT PROBLEMS"]
        lines += [f"{a['agent_id'] or '-':24} {_HEALTH[a['healthy']]:9} {a['server_id']:>10} "
                  f"{a['service'] or '-':10} {a['restarts'] if a['restarts'] is not None else '-':>8} "
                  f"{_yes_no(a['tailscale_online']):9} {a['snapshot_id'] or '-':>10} {_yes_no(a['drift']):5} "
                  f"{'; '.join(a['problems'] + a['unchecked']) or '-'}" for a in r["agents"]]
        return "\n".join(lines)

    run("status", check, prepare=options, json=json, text=text,
        failed=lambda r: None if "sweeps" in r else verdict(r), token_env=token_env, token_file=token_file)


_HEALTH = {True: "yes", False: "NO", None: "UNCHECKED"}


@task(iterable=["agent_id"], help={
    "agent_id": "only these agents (repeat the option or separate ids by commas); default: every agent",
    "selector": "only the agents whose servers match this label selector",
    "agent_bundle": "new agent code: a directory with index.js, or a .tar.gz",
    "secrets_file": "new secrets (dotenv) for /opt/openclaw/config/secrets.env, over SSH",
    "batch": "agents updated at once; the update stops after a batch with a failure (default 1)",
    "json": "print one JSON object {agents: [{agent_id, server_id, status, seconds, error}], stopped}",
    "events": "write live events (one JSON object per line, schema in the README) to this file; - for stdout",
    **_TOKEN_HELP,
})
def update(c, agent_id=None, selector=None, agent_bundle=None, secrets_file=None, batch=1, json=False, events=None,
           token_env=None, token_file=None):
    """New agent code and/or secrets to running agents over SSH, batch by batch, each restarted and waited for.

    An agent that does not come up gets its previous code and secrets back, and the update stops. Needs
    SSH_PRIVATE_KEY_PATH (your key, the private half of HETZNER_SSH_KEY_ID)."""
    from .fleet.update import update_fleet

    def ids() -> list[str]:
        check_events(events, json)
        return _agent_ids(agent_id)

    def failed(r: dict) -> str | None:
        bad = [a for a in r["agents"] if a["status"] != "updated"]
        return "; ".join(f"{a['agent_id']}: {a['status']}" + (f" ({a['error']})" if a["error"] else "")
                         for a in bad) or None

    run("update", lambda t, i: update_fleet(t, i, selector, _path(agent_bundle), _path(secrets_file),
                                            whole_number("--batch", batch), say, events),
        prepare=ids, json=json, failed=failed, token_env=token_env, token_file=token_file,
        text=lambda r: "\n".join(f"{a['agent_id'] or '-':24} {a['status']:12} {a['server_id']:>10} "
                                 f"{a['seconds'] if a['seconds'] is not None else '-'}" for a in r["agents"]))


@task(iterable=["agent_id"], help={
    "to": "the snapshot to roll onto: `latest` (the newest of the profile, default) or a snapshot id",
    "agent_id": "only these agents (repeat the option or separate ids by commas); default: every agent of the profile",
    "selector": "only the agents whose servers match this label selector",
    "profile": "the agents' profile (default agent)",
    "batch": "agents replaced at once; the roll stops after a batch with a failure (default 1)",
    "timeout": "seconds a replacement may take to be ready (default 600)",
    "in_place": "rebuild each agent's own server instead (keeps server id and address; the agent is down meanwhile)",
    "json": "print one JSON object {run_id, to, agents: [{agent_id, status, old_server_id, new_server_id, "
            "old_snapshot_id, new_snapshot_id, seconds, error}], stopped}",
    "events": "write live events (one JSON object per line, schema in the README) to this file; - for stdout",
    **_TOKEN_HELP,
})
def roll(c, to="latest", agent_id=None, selector=None, profile="agent", batch=1, timeout=None, in_place=False,
         json=False, events=None, token_env=None, token_file=None):
    """Move agents that run an older snapshot onto the target, batch by batch, without a gap in service.

    Each agent keeps its id, server name, labels, Tailscale hostname, code and secrets: its replacement boots
    under a temporary name, is configured over SSH and waited for, and only then replaces the old server. A
    failing replacement is deleted (the old host keeps serving) and the roll stops; running it again finishes
    an interrupted roll. --in-place rebuilds the agent's own server (Hetzner's rebuild) at the price of an outage.
    Needs HETZNER_SSH_KEY_ID and SSH_PRIVATE_KEY_PATH (its private half)."""
    from .fleet.roll import RollOptions, roll_fleet

    def options() -> RollOptions:
        check_events(events, json)
        return RollOptions(to=str(to), agent_ids=_agent_ids(agent_id), selector=selector, profile=profile,
                           batch=whole_number("--batch", batch), events=events, in_place=in_place,
                           timeout=number("--timeout", timeout) if timeout is not None else None)

    def failed(r: dict) -> str | None:
        bad = [a for a in r["agents"] if a["status"] not in ("rolled", "current")]
        return "; ".join(f"{a['agent_id']}: {a['status']}" + (f" ({a['error']})" if a["error"] else "")
                         for a in bad) or None

    run("roll", lambda t, o: roll_fleet(t, o, say), prepare=options, json=json, failed=failed,
        token_env=token_env, token_file=token_file,
        text=lambda r: "\n".join(f"{a['agent_id']:24} {a['status']:11} {a['old_server_id'] or '-':>10} -> "
                                 f"{a['new_server_id'] or '-':<10} snapshot {a['old_snapshot_id'] or '-'} -> "
                                 f"{a['new_snapshot_id']}" for a in r["agents"]))


def _agent_ids(raw: list[str] | None) -> list[str]:
    """--agent-id values (repeated, or comma-separated), each checked."""
    from . import agentid

    found = [part.strip() for value in raw or [] for part in value.split(",") if part.strip()]
    for agent in found:
        agentid.server_name(agent)
    return found


def _yes_no(value) -> str:
    return "-" if value is None else "yes" if value else "no"


@task(positional=["action"], help={
    "action": "fill (make the pool hold --size ready hosts from the newest snapshot, replacing older ones), "
              "status, or drain (delete every pool host)",
    "size": "fill: how many ready hosts the pool holds",
    "profile": "image profile (default agent)",
    "snapshot": "fill: `latest` (default: the newest of the profile) or a snapshot id",
    "server_type": "fill: server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": _LOCATION_HELP,
    "parallel": "fill: hosts created at once (default 5)",
    "json": "print one JSON object", **_TOKEN_HELP})
def pool(c, action, size=None, profile="agent", snapshot="latest", server_type=None, location=None, parallel=5,
         json=False, token_env=None, token_file=None):
    """Warm pool: running, unassigned hosts that `provision` claims first (fill --size N | status | drain).

    Hosts are reached with your own key (HETZNER_SSH_KEY_ID and SSH_PRIVATE_KEY_PATH). Hetzner bills a server
    whether it runs or is stopped: fill and status print what the pool costs per hour and per month."""
    from .errors import InputError
    from .pool import fill as pool_fill
    from .pool.members import describe_cost

    def status_text(r: dict) -> str:
        lines = [f"{'SERVER':>10} {'NAME':24} {'STATUS':10} {'READY':6} {'SNAPSHOT':>10} {'STALE':6} {'IPV4':16} "
                 "LOCATION"]
        lines += [f"{m['server_id']:>10} {m['name']:24} {m['status']:10} {_yes_no(m['ready']):6} "
                  f"{m['snapshot_id'] or '-':>10} {_yes_no(m['stale']):6} {m['ipv4'] or '-':16} {m['location'] or '-'}"
                  for m in r["members"]]
        return "\n".join(lines + ["", describe_cost(r["cost"])])

    if action == "fill":
        def options() -> pool_fill.PoolOptions:
            if size is None:
                raise InputError("fill needs --size N: how many ready hosts the pool holds")
            return pool_fill.check_options(pool_fill.PoolOptions(
                size=whole_number("--size", size), profile=profile, snapshot=snapshot,
                server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
                location=settings.choose(location, "IMAGEKIT_LOCATION"), parallel=whole_number("--parallel", parallel)))

        run("pool fill", lambda t, o: pool_fill.fill(t, o, say), prepare=options, json=json, text=status_text,
            failed=lambda r: "; ".join(r["failed"]) or None, token_env=token_env, token_file=token_file)
    elif action == "status":
        run("pool status", lambda t: pool_fill.status(t, profile), json=json, text=status_text, token_env=token_env,
            token_file=token_file)
    elif action == "drain":
        run("pool drain", lambda t: pool_fill.drain(t, profile, say), json=json, token_env=token_env,
            token_file=token_file, text=lambda r: f"pool drained: {len(r['deleted'])} host(s) deleted")
    else:
        def unknown(_):
            raise InputError(f"unknown action {action!r}: choose fill, status or drain")

        run("pool", unknown, target=False)


@task(name="list", help={"json": "print one JSON object {agents: [...], snapshots: [...]}", **_TOKEN_HELP})
def list_(c, json=False, token_env=None, token_file=None):
    """Show the agent servers and snapshots imagekit manages."""
    from .fleet.listing import list_managed

    def text(r: dict) -> str:
        lines = [f"{'AGENT':24} {'SERVER':>10} {'STATUS':10} {'IPV4':16} {'MODE':9} CREATED"]
        lines += [f"{a['agent_id'] or '-':24} {a['server_id']:>10} {a['status']:10} {a['ipv4'] or '-':16} "
                  f"{a['mode'] or '-':9} {a['created']}" for a in r["agents"]]
        lines += ["", f"{'SNAPSHOT':>10} {'PROFILE':10} {'SIZE GB':>8} {'CREATED':26} DESCRIPTION"]
        lines += [f"{s['snapshot_id']:>10} {s['profile'] or '-':10} {s['size_gb'] or 0:>8} {s['created']:26} "
                  f"{s['description']}" for s in r["snapshots"]]
        return "\n".join(lines)

    run("list", list_managed, json=json, text=text, token_env=token_env, token_file=token_file)


@task(help={"agent_id": "the agent whose user data to show",
            "mode": "snapshot (default) or fallback",
            "api_url": "the agents' API_URL (default: AURA_API_URL)",
            "agent_bundle": "directory or .tar.gz of the agent (default: the profile's example bundle)",
            "no_tailscale": "leave Tailscale enrolment out", "profile": "image profile (default agent)"})
def render_cloud_init(c, agent_id, mode="snapshot", api_url=None, agent_bundle=None, no_tailscale=False,
                      profile="agent"):
    """Print the cloud-init user data provision would send for an agent (auth key masked); creates nothing."""
    from .provision import render_for_operator
    from .target import token_from

    run("render-cloud-init", lambda _: {"user_data": render_for_operator(
        agent_id, mode=mode, local=token_from() is None, api_url=api_url, tailscale=not no_tailscale,
        agent_bundle=Path(agent_bundle) if agent_bundle else None, profile=profile)}, target=False,
        text=lambda r: r["user_data"].rstrip("\n"))


# --- one-shot jobs ------------------------------------------------------------------------------


@task(name="run", iterable=["job_id"], auto_shortflags=False, help={
    "job_id": "job id (repeat the option or separate ids by commas): one fresh host per job, run at once",
    "count": "run N jobs: ID-1..ID-N with one --job-id, else job-1..job-N",
    "snapshot": "snapshot id, or `latest` (default) for the newest of the profile",
    "mode": "auto (the snapshot if one exists, else a full install), snapshot, or fallback",
    "profile": "image profile (default agent); the command gets its agent's sandbox",
    "server_type": "server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": _LOCATION_HELP,
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
    **_TOKEN_HELP,
})
def run_(c, job_id=None, count=None, snapshot="latest", mode="auto", profile="agent", server_type=None,
        location=None, base_image=None, workdir=None, outputs=None, timeout=None, ready_timeout=None,
        secrets_file=None, keep_on_failure=False, tailscale=False, max_upload_mb=256, max_output_mb=1024, parallel=5,
        json=False, token_env=None, token_file=None):
    """Run a command once on a fresh host from the snapshot: `invoke run --job-id ID [options] -- COMMAND [ARGS]`.

    The host is deleted whatever happens (success, failing command, timeout, Ctrl-C, SIGTERM); the exit code
    is the command's (124 on timeout)."""
    from .jobs import JobOptions, run_jobs
    from .jobs.options import expand

    def options() -> JobOptions:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
        return JobOptions(
            job_ids=expand(list(job_id or []), whole_number("--count", count)), command=argv, snapshot=snapshot,
            mode=mode, profile=profile, server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
            location=settings.choose(location, "IMAGEKIT_LOCATION"),
            base_image=settings.choose(base_image, "IMAGEKIT_BASE_IMAGE"),
            workdir=Path(workdir) if workdir else None, outputs=Path(outputs) if outputs else None,
            timeout=3600.0 if timeout is None else number("--timeout", timeout),
            ready_timeout=number("--ready-timeout", ready_timeout),
            secrets_file=_path(settings.choose(secrets_file, "IMAGEKIT_SECRETS_FILE")), keep_on_failure=keep_on_failure,
            tailscale=tailscale, max_upload_mb=whole_number("--max-upload-mb", max_upload_mb),
            max_output_mb=whole_number("--max-output-mb", max_output_mb),
            parallel=whole_number("--parallel", parallel))

    result = run("run", lambda t, o: run_jobs(t, o, say, json=json), prepare=options, json=json,
                 token_env=token_env, token_file=token_file)
    for j in result["jobs"]:
        what = j["error"] or ("timed out" if j["timed_out"] else f"exit code {j['exit_code']}")
        say(f"job {j['job_id']}: {what}; ready {j['seconds']['create_to_ready']} s, ran {j['seconds']['run']} s, "
            f"torn down in {j['seconds']['teardown']} s" + (" (server kept)" if j["kept"] else ""))
    sys.exit(result["exit_code"])  # the command's own (124 on timeout), so scripts can act on it


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


# --- measuring ---------------------------------------------------------------------------------


@task(help={"out": "where to write the JSON figures (a Markdown table goes beside it; default bench/results.json)",
            "runs": "runs per cheap figure (snapshot provisioning, floor); the median is reported (default 3)",
            "fleet": "agents provisioned at once for the concurrency figure (default 10)"})
def bench(c, out="bench/results.json", runs=3, fleet=10):
    """Measure build and provisioning on the local cloud (several minutes); figures to --out and a table."""
    from . import bench as benchmark

    run("bench", lambda t: benchmark.run(t, Path(out), runs=whole_number("--runs", runs),
                                         fleet_size=whole_number("--fleet", fleet), progress=say),
         text=lambda r: Path(out).with_suffix(".md").read_text())
    say(f"figures written to {out} (table: {Path(out).with_suffix('.md')})")


namespace = Collection.from_module(sys.modules[__name__])
