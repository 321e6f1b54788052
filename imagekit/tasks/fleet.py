"""The fleet's tasks on running agents: their health (status), new code or secrets (update), a newer snapshot
(roll)."""

from __future__ import annotations

from typing import Any

from invoke import Context, task

from .. import render
from ..events import check_destination as check_events
from ..target import Target
from .shared import TOKEN_HELP, agent_ids, number, path, run, say, whole_number


@task(iterable=["agent_id"], help={
    "agent_id": "only these agents (repeat the option or separate ids by commas); default: every agent",
    "selector": "only the agents whose servers match this label selector, e.g. deployment=20261123-abc123",
    "json": "print one JSON object {agents: [{agent_id, server_id, healthy (true, false, or null: unchecked), "
            "service, restarts, tailscale_online, snapshot_id, newest_snapshot_id, drift, provisioned_at, "
            "hourly_cost_gross, expires_at, problems, unchecked}], missing}; with --watch one object per change or "
            "alert",
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
    **TOKEN_HELP,
})
def status(c: Context, agent_id: list[str] | None = None, selector: str | None = None, json: bool = False,
           api_only: bool = False, watch: str | None = None, alert_after: str | None = None,
           alert_command: str | None = None, webhook: str | None = None, api_every: str | None = None,
           parallel: int = 10, metrics: str | None = None, token_env: str | None = None,
           token_file: str | None = None) -> None:
    """Each agent's health: server, SSH, openclaw-agent, Tailscale, snapshot drift; exit 1 if any is unhealthy,
    unchecked (a check could not be made: no key, SSH refused) or not found.

    The services are read over SSH with SSH_PRIVATE_KEY_PATH (your key, the private half of HETZNER_SSH_KEY_ID).
    --watch SECONDS keeps checking, prints changes and alerts (--alert-command, --webhook)."""
    from ..fleet.status import fleet_status, verdict
    from ..fleet.watch import WatchOptions, watch_fleet, watch_options

    def options() -> tuple[list[str], WatchOptions | None]:
        return agent_ids(agent_id), watch_options(watch, alert_after, alert_command, webhook, api_every,
                                                  whole_number("--parallel", parallel), api_only, metrics, json)

    def check(t: Target, prepared: tuple[list[str], WatchOptions | None]) -> dict[str, Any]:
        ids, watching = prepared
        if watching:
            return watch_fleet(t, ids, selector, watching, say)
        return fleet_status(t, ids, selector, say, api_only=api_only, parallel=whole_number("--parallel", parallel),
                            metrics_file=path(metrics))

    run("status", check, prepare=options, json=json, text=render.status,
        failed=lambda r: None if "sweeps" in r else verdict(r), token_env=token_env, token_file=token_file)


@task(iterable=["agent_id"], help={
    "agent_id": "only these agents (repeat the option or separate ids by commas); default: every agent",
    "selector": "only the agents whose servers match this label selector",
    "agent_bundle": "new agent code: a directory with index.js, or a .tar.gz",
    "secrets_file": "new secrets (dotenv) for /opt/openclaw/config/secrets.env, over SSH",
    "batch": "agents updated at once; the update stops after a batch with a failure (default 1)",
    "json": "print one JSON object {agents: [{agent_id, server_id, status, seconds, error}], stopped}",
    "events": "write live events (one JSON object per line; docs/reference/events.md) to this file; - for stdout",
    **TOKEN_HELP,
})
def update(c: Context, agent_id: list[str] | None = None, selector: str | None = None,
           agent_bundle: str | None = None, secrets_file: str | None = None, batch: int = 1, json: bool = False,
           events: str | None = None, token_env: str | None = None, token_file: str | None = None) -> None:
    """New agent code and/or secrets to running agents over SSH, batch by batch, each restarted and waited for.

    An agent that does not come up gets its previous code and secrets back, and the update stops. Needs
    SSH_PRIVATE_KEY_PATH (your key, the private half of HETZNER_SSH_KEY_ID)."""
    from ..fleet.update import update_fleet

    def ids() -> list[str]:
        check_events(events, json)
        return agent_ids(agent_id)

    run("update", lambda t, i: update_fleet(t, i, selector, path(agent_bundle), path(secrets_file),
                                            whole_number("--batch", batch), say, events),
        prepare=ids, json=json, failed=lambda r: render.not_done(r, ("updated",)), text=render.update,
        token_env=token_env, token_file=token_file)


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
    "events": "write live events (one JSON object per line; docs/reference/events.md) to this file; - for stdout",
    "trust_unpinned": "read agents whose server has no host-key label (made before imagekit pinned host keys) "
                      "trusting the host key they show this once; their replacements are pinned",
    **TOKEN_HELP,
})
def roll(c: Context, to: str = "latest", agent_id: list[str] | None = None, selector: str | None = None,
         profile: str = "agent", batch: int = 1, timeout: str | None = None, in_place: bool = False,
         json: bool = False, events: str | None = None, trust_unpinned: bool = False, token_env: str | None = None,
         token_file: str | None = None) -> None:
    """Move agents that run an older snapshot onto the target, batch by batch, without a gap in service.

    Each agent keeps its id, server name, labels, Tailscale hostname, code and secrets: its replacement boots
    under a temporary name, is configured over SSH and waited for, and only then replaces the old server. A
    failing replacement is deleted (the old host keeps serving) and the roll stops; running it again finishes
    an interrupted roll. --in-place rebuilds the agent's own server (Hetzner's rebuild) at the price of an outage.
    Needs HETZNER_SSH_KEY_ID and SSH_PRIVATE_KEY_PATH (its private half).

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from ..fleet.roll import RollOptions, roll_fleet

    def options() -> RollOptions:
        check_events(events, json)
        return RollOptions(to=str(to), agent_ids=agent_ids(agent_id), selector=selector, profile=profile,
                           batch=whole_number("--batch", batch), events=events, in_place=in_place,
                           trust_unpinned=trust_unpinned,
                           timeout=number("--timeout", timeout) if timeout is not None else None)

    run("roll", lambda t, o: roll_fleet(t, o, say), prepare=options, json=json,
        failed=lambda r: render.not_done(r, ("rolled", "current")), text=render.roll, token_env=token_env,
        token_file=token_file)


@task(help={"json": "print one JSON object {currency, prices (gross), vat_rate, groups: {fleet, pool, jobs, builders, "
                    "other_servers, primary_ipv4s, snapshots (also gb): {count, hourly, monthly}}, total: {hourly, "
                    "monthly}, caps: {max_servers, servers, servers_over, max_hourly, hourly, hourly_over}}",
            **TOKEN_HELP})
def cost(c: Context, json: bool = False, token_env: str | None = None, token_file: str | None = None) -> None:
    """What the project costs per hour and per month, gross, from the API's /pricing: the fleet, the pool, jobs,
    builders, other servers, snapshots' storage and Primary IPv4s; and how far it is over IMAGEKIT_MAX_SERVERS and
    IMAGEKIT_MAX_HOURLY when runs started at the same moment passed them together."""
    from ..fleet.cost import project_cost

    run("cost", project_cost, json=json, text=render.cost, token_env=token_env, token_file=token_file)
