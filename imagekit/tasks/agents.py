"""The agents' tasks: provision (warm pool, snapshot or full install), deprovision, the warm pool itself, the list
of what imagekit manages, and the user data provision would send."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from invoke import Context, task

from .. import render, settings
from ..events import check_destination as check_events
from .shared import (
    IPV4_HELP,
    LABEL_HELP,
    LOCATION_HELP,
    NETWORK_HELP,
    RECYCLE_HELP,
    RUN_ID_HELP,
    TOKEN_HELP,
    TTL_HELP,
    LetterFlagsNoDashH,
    NoDashH,
    agent_ids,
    given_flag,
    number,
    path,
    run,
    say,
    whole_number,
)


@task(iterable=["agent_id", "label", "network"], klass=NoDashH, help={
    "agent_id": "agent id (repeat the option or separate ids by commas); the server is named after it",
    "count": "provision N agents: ID-1..ID-N with one --agent-id, else agent-1..agent-N",
    "mode": "auto (snapshot if one exists, else fallback), snapshot, or fallback (full install on a stock image)",
    "snapshot": "snapshot id (default: HETZNER_SNAPSHOT_ID, else the newest of the profile); `latest` for the newest",
    "profile": "image profile (default agent)",
    "server_type": "server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": LOCATION_HELP,
    "base_image": "stock image for fallback mode (default IMAGEKIT_BASE_IMAGE or debian-12)",
    "api_url": "the agents' API_URL (default: AURA_API_URL)",
    "agent_bundle": "directory (with the profile's entrypoint, index.js for agents) or .tar.gz put in the profile's "
                    "code directory (/opt/openclaw/agent for agents; default: the profile's example bundle); in the "
                    "user data when it fits, else streamed over SSH once the host boots (then not with --no-wait)",
    "no_tailscale": "do not enrol the hosts in Tailscale (no OAuth credentials needed)",
    "no_wait": "return once the servers are created (snapshot mode, code that fits in the user data, no secrets)",
    "timeout": "seconds each agent may take to become ready (default 600; 1800 in fallback mode)",
    "parallel": "agents provisioned at once (default 5)",
    "secrets_file": "dotenv file whose values reach each agent's environment over SSH, in the profile's "
                    "secrets.env (/opt/openclaw/config/ for agents; default IMAGEKIT_SECRETS_FILE); never in user "
                    "data or logs",
    "json": "print one JSON object {agents: [...]} on stdout; progress goes to stderr",
    "events": "write live events (one JSON object per line; docs/reference/events.md) to this file; - for stdout",
    "no_pool": "create every agent's server cold, even when warm pool hosts are there",
    "refill": "afterwards, top the warm pool up to the size it had (needs SSH_PRIVATE_KEY_PATH)",
    "run_id": RUN_ID_HELP + "; also the agents' `deployment` label",
    "label": LABEL_HELP,
    "ipv4": IPV4_HELP + "; IPv6-only agents claim IPv6-only pool hosts (`pool fill --no-ipv4`)",
    "ssh_from": "CIDR[,CIDR]: SSH open only to these sources (a firewall per set, made and reused by imagekit, in "
                "place of the profile's); provision checks it still reaches the hosts, else puts the old one back",
    "ttl": TTL_HELP + "; roll and update keep it",
    "spread": "put the run's agents in a `spread` placement group of their own (each on another physical host; at "
              "most 10 agents; deleted with the last of them); every agent is then created cold (a running pool "
              "host cannot join a group)",
    **NETWORK_HELP,
    **TOKEN_HELP,
})
def provision(c: Context, agent_id: list[str] | None = None, count: str | None = None, mode: str = "auto",
              snapshot: str | None = None, profile: str = "agent", server_type: str | None = None,
              location: str | None = None, base_image: str | None = None, api_url: str | None = None,
              agent_bundle: str | None = None, no_tailscale: bool = False, no_wait: bool = False,
              timeout: str | None = None, parallel: int = 5, secrets_file: str | None = None, json: bool = False,
              events: str | None = None, no_pool: bool = False, refill: bool = False, run_id: str | None = None,
              token_env: str | None = None, token_file: str | None = None, ttl: str | None = None,
              spread: bool = False, label: list[str] | None = None, ssh_from: str | None = None,
              ipv4: bool = True, network: list[str] | None = None, ssh_via: str | None = None) -> None:
    """Turn agent ids into ready agent hosts: a warm pool host in about a second, else the newest snapshot in
    seconds, else a full install. Pool hosts are claimed with your key (SSH_PRIVATE_KEY_PATH) when it is set.

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from .. import agentid, runid
    from .. import ttl as ttls
    from ..cloud import userlabels
    from ..provision import ProvisionOptions, provision
    from ..provision.options import check_options
    from ..steps import sshfrom

    def options() -> ProvisionOptions:
        check_events(events, json)
        networks, via = settings.networks(network, ssh_via)
        return check_options(ProvisionOptions(
            agent_ids=agentid.expand(list(agent_id or []), whole_number("--count", count)), mode=mode,
            snapshot=snapshot, profile=profile, server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
            location=settings.choose(location, "IMAGEKIT_LOCATION"),
            base_image=settings.choose(base_image, "IMAGEKIT_BASE_IMAGE"), api_url=api_url,
            tailscale=not no_tailscale, wait=not no_wait, timeout=number("--timeout", timeout),
            parallel=whole_number("--parallel", parallel), agent_bundle=Path(agent_bundle) if agent_bundle else None,
            secrets_file=path(settings.choose(secrets_file, "IMAGEKIT_SECRETS_FILE")), events=events,
            pool=not no_pool, refill=refill, run_id=runid.given(run_id), ttl=ttls.parse(ttl),
            spread=spread, labels=userlabels.parse(label or []), ssh_from=sshfrom.parse(ssh_from),
            ipv4=settings.ipv4(given_flag("ipv4", ipv4)), networks=networks, ssh_via=via))

    run("provision", lambda t, o: provision(t, o, say), prepare=options, json=json, failed=render.failed_agents,
        text=render.agents, token_env=token_env, token_file=token_file)


@task(iterable=["agent_id"], help={
    "agent_id": "agent id (repeat the option or separate ids by commas)",
    "selector": "label selector for the agents' servers, e.g. deployment=20261123-abc123",
    "recycle_min": RECYCLE_HELP,
    "json": "print what was deleted and recycled as JSON",
    **TOKEN_HELP,
})
def deprovision(c: Context, agent_id: list[str] | None = None, selector: str | None = None, json: bool = False,
                token_env: str | None = None, token_file: str | None = None, recycle_min: str | None = None) -> None:
    """Delete agents' servers and their Tailscale devices; agents without a server are fine (exit 0).

    A server with at least --recycle-min minutes left of its paid hour (Hetzner bills every started hour) goes back
    into the warm pool instead, while the pool holds fewer hosts than the last `pool fill --size`: rebuilt from the
    profile's newest snapshot with a new host key (needs HETZNER_SSH_KEY_ID and SSH_PRIVATE_KEY_PATH)."""
    from ..fleet.deprovision import deprovision
    from ..pool import recycle

    run("deprovision", lambda t, i: deprovision(t, i[0], selector, say, i[1]),
        prepare=lambda: (agent_ids(agent_id), recycle.minimum(recycle_min)), json=json,
        token_env=token_env, token_file=token_file,
        text=lambda r: say(f"deleted {len(r['deleted'])} server(s), recycled {len(r['recycled'])} into the pool, "
                           f"deleted {len(r['tailscale_devices_deleted'])} Tailscale device(s)"))


@task(positional=["action"], iterable=["label", "network"], klass=LetterFlagsNoDashH, help={
    "action": "fill (make the pool hold --size ready hosts from the newest snapshot, replacing older ones), "
              "status, or drain (delete every pool host)",
    "size": "fill: how many ready hosts the pool holds",
    "profile": "image profile (default agent)",
    "snapshot": "fill: `latest` (default: the newest of the profile) or a snapshot id",
    "server_type": "fill: server type (default IMAGEKIT_SERVER_TYPE or cx23)",
    "location": LOCATION_HELP,
    "parallel": "fill: hosts created at once (default 5)",
    "run_id": "fill: " + RUN_ID_HELP,
    "label": "fill: " + LABEL_HELP,
    "ttl": "fill: " + TTL_HELP + "; a host claimed by provision takes provision's --ttl instead",
    **{k: "fill: " + v + "; provision with the same claims them" for k, v in NETWORK_HELP.items()},
    "ipv4": "fill: " + IPV4_HELP + "; IPv6-only hosts are a pool of their own, which `provision --no-ipv4` claims",
    "json": "print one JSON object", **TOKEN_HELP})
def pool(c: Context, action: str, size: str | None = None, profile: str = "agent", snapshot: str = "latest",
         server_type: str | None = None, location: str | None = None, parallel: int = 5, run_id: str | None = None,
         json: bool = False, token_env: str | None = None, token_file: str | None = None,
         ttl: str | None = None, label: list[str] | None = None, network: list[str] | None = None,
         ssh_via: str | None = None, ipv4: bool = True) -> None:
    """Warm pool: running, unassigned hosts that `provision` claims first (fill --size N | status | drain).

    Hosts are reached with your own key (HETZNER_SSH_KEY_ID and SSH_PRIVATE_KEY_PATH). Hetzner bills a server
    whether it runs or is stopped: fill and status print what the pool costs per hour and per month. Fill and drain
    delete a host only once they have reserved it as a claim does: a host claimed meanwhile stays.

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from .. import runid
    from .. import ttl as ttls
    from ..cloud import userlabels
    from ..errors import InputError
    from ..pool import fill as pool_fill

    if action == "fill":
        def options() -> pool_fill.PoolOptions:
            if size is None:
                raise InputError("fill needs --size N: how many ready hosts the pool holds")
            networks, via = settings.networks(network, ssh_via)
            return pool_fill.check_options(pool_fill.PoolOptions(
                size=whole_number("--size", size), profile=profile, snapshot=snapshot,
                server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
                location=settings.choose(location, "IMAGEKIT_LOCATION"), parallel=whole_number("--parallel", parallel),
                run_id=runid.given(run_id), ttl=ttls.parse(ttl), labels=userlabels.parse(label or []),
                networks=networks, ssh_via=via,
                ipv4=settings.ipv4(given_flag("ipv4", ipv4))))

        run("pool fill", lambda t, o: pool_fill.fill(t, o, say), prepare=options, json=json, text=render.pool,
            failed=lambda r: "; ".join(r["failed"]) or None, token_env=token_env, token_file=token_file)
    elif action == "status":
        run("pool status", lambda t: pool_fill.status(t, profile), json=json, text=render.pool, token_env=token_env,
            token_file=token_file)
    elif action == "drain":
        run("pool drain", lambda t: pool_fill.drain(t, profile, say), json=json, token_env=token_env,
            token_file=token_file, text=lambda r: f"pool drained: {len(r['deleted'])} host(s) deleted")
    else:
        def unknown(_: None) -> NoReturn:
            raise InputError(f"unknown action {action!r}: choose fill, status or drain")

        run("pool", unknown, target=False)


@task(name="list", help={"json": "print one JSON object {agents: [...], snapshots: [...]}", **TOKEN_HELP})
def list_(c: Context, json: bool = False, token_env: str | None = None, token_file: str | None = None) -> None:
    """Show the agent servers and snapshots imagekit manages."""
    from ..fleet.listing import list_managed

    run("list", list_managed, json=json, text=render.listing, token_env=token_env, token_file=token_file)


@task(help={"agent_id": "the agent whose user data to show",
            "mode": "snapshot (default) or fallback",
            "api_url": "the agents' API_URL (default: AURA_API_URL)",
            "agent_bundle": "directory or .tar.gz of the agent (default: the profile's example bundle); left out "
                            "when too large for the user data (provision stages it over SSH)",
            "no_tailscale": "leave Tailscale enrolment out", "profile": "image profile (default agent)"})
def render_cloud_init(c: Context, agent_id: str, mode: str = "snapshot", api_url: str | None = None,
                      agent_bundle: str | None = None, no_tailscale: bool = False, profile: str = "agent") -> None:
    """Print the cloud-init user data provision would send for an agent (auth key masked); creates nothing."""
    from ..provision import render_for_operator
    from ..target import token_from

    run("render-cloud-init", lambda _: {"user_data": render_for_operator(
        agent_id, mode=mode, local=token_from() is None, api_url=api_url, tailscale=not no_tailscale,
        agent_bundle=Path(agent_bundle) if agent_bundle else None, profile=profile)}, target=False,
        text=lambda r: r["user_data"].rstrip("\n"))
