"""The local cloud's tasks (up, down, status, env, reset), and the bench that measures imagekit on it."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, task

from .. import render
from .shared import run, say, whole_number


@task(help={"arm": "also start building the arm64 system image now, in the background (~5 min under emulation; "
                    "else the first arm server waits for it)"})
def cloud_up(c: Context, arm: bool = False) -> None:
    """Start the local Hetzner-compatible cloud (builds its Debian 12 image the first time, ~2 min)."""
    from localcloud import client as localcloud

    def up(_: None) -> dict[str, object]:
        ep = localcloud.up(progress=say)
        return {"endpoint": ep.endpoint, **({"arm": ep.admin("PUT", "/_admin/architectures/arm")} if arm else {})}

    found = run("cloud-up", up, target=False)
    say(f"local cloud is up at {found['endpoint']}")
    if arm:
        state = found["arm"]
        say(f"arm servers: {state['arm']}{' (' + state['arm_reason'] + ')' if state.get('arm_reason') else ''}")


@task
def cloud_down(c: Context) -> None:
    """Stop the local cloud and its machines; servers, snapshots and keys are kept for the next cloud-up."""
    from localcloud import client as localcloud

    run("cloud-down", lambda _: {"stopped": localcloud.down()}, target=False,
         text=lambda r: "local cloud stopped" if r["stopped"] else "local cloud was not running")


@task(help={"json": "print one JSON object with at least endpoint and token"})
def cloud_status(c: Context, json: bool = False) -> None:
    """Show whether the local cloud runs, its endpoint and API token (use them as HCLOUD_ENDPOINT/HCLOUD_TOKEN)."""
    from localcloud import client as localcloud

    run("cloud-status", lambda _: localcloud.status(), json=json, text=render.cloud_status, target=False,
         failed=lambda st: None if st["running"] or not json else "the local cloud is not running")


@task
def cloud_env(c: Context) -> None:
    """Print `export HCLOUD_ENDPOINT=... HCLOUD_TOKEN=...` for the local cloud (use with eval)."""
    from localcloud import client as localcloud

    def env(_: None) -> dict[str, str]:
        ep = localcloud.running()
        return {"endpoint": ep.endpoint, "token": ep.token}

    run("cloud-env", env, target=False, text=lambda r: f"export HCLOUD_ENDPOINT={r['endpoint']} "
                                                         f"HCLOUD_TOKEN={r['token']}")


@task
def cloud_reset(c: Context) -> None:
    """Delete every server, snapshot, SSH key, firewall, network, placement group and Primary IP of the local cloud,
    and disarm injected faults (keeps its system image)."""
    from localcloud import client as localcloud

    run("cloud-reset", lambda _: localcloud.reset(), target=False)
    say("local cloud reset: no servers, snapshots, keys, firewalls, networks, placement groups, Primary IPs or "
        "injected faults left")


@task(help={"out": "where to write the JSON figures (a Markdown table goes beside it; default bench/results.json)",
            "runs": "runs per cheap figure (snapshot provisioning, floor); the median is reported (default 3)",
            "fleet": "agents provisioned at once for the concurrency figure (default 10)"})
def bench(c: Context, out: str = "bench/results.json", runs: int = 3, fleet: int = 10) -> None:
    """Measure build and provisioning on the local cloud (several minutes); figures to --out and a table.

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from .. import bench as benchmark

    run("bench", lambda t: benchmark.run(t, Path(out), runs=whole_number("--runs", runs),
                                         fleet_size=whole_number("--fleet", fleet), progress=say),
         text=lambda r: Path(out).with_suffix(".md").read_text())
    say(f"figures written to {out} (table: {Path(out).with_suffix('.md')})")
