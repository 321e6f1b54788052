"""The image tasks: a round trip, build-snapshot, verify, and sweeping what runs left (gc, prune-snapshots)."""

from __future__ import annotations

import os
from typing import Any

from invoke import Context, task

from .. import render, settings
from ..events import check_destination as check_events
from ..target import Target
from .shared import (
    LOCATION_HELP,
    NETWORK_HELP,
    RUN_ID_HELP,
    TOKEN_HELP,
    LetterFlags,
    given_flag,
    number,
    path,
    run,
    say,
    whole_number,
)


@task(help={"server_type": "server type (default cx23)", "image": "image name (default debian-12)",
            "location": LOCATION_HELP, "json": "print the result as JSON",
            **TOKEN_HELP})
def roundtrip(c: Context, server_type: str = "cx23", image: str = "debian-12", location: str | None = None,
              json: bool = False, token_env: str | None = None, token_file: str | None = None) -> None:
    """Create a key and a server with user data, SSH in, check cloud-init ran it, delete both.

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from ..roundtrip import roundtrip

    run("roundtrip", lambda t: roundtrip(t, server_type=server_type, image=image, location=location, progress=say),
         json=json, token_env=token_env, token_file=token_file,
         text=render.roundtrip)


@task(help={
    "profile": "image profile (playbooks/<profile>.yml; default agent)",
    "base_image": "base system image (default IMAGEKIT_BASE_IMAGE or debian-12; on Hetzner e.g. ubuntu-24.04)",
    "server_type": "builder server type (default IMAGEKIT_SERVER_TYPE or cx23); with --arch, the x86 builder's",
    "arch": "x86, arm or x86,arm: a snapshot of each architecture, built in parallel, each verified, reused and "
            "pruned on its own (default IMAGEKIT_ARCH, else the server type's architecture)",
    "arm_server_type": "the arm builder's server type under --arch (default IMAGEKIT_ARM_SERVER_TYPE or cax11)",
    "location": "location of the builder: " + LOCATION_HELP,
    "name": "snapshot description template; {profile}, {build_id} and {arch} are filled in",
    "package_source": "local (distribution + the local cloud's repo: Tailscale stand-in, Node.js) or vendor (Docker, "
                      "NodeSource, Tailscale); default: local on the local cloud, vendor on Hetzner",
    "json": "print one JSON object (snapshot id, labels, size, durations, reused, inputs_hash) on stdout; progress "
            "goes to stderr",
    "keep_on_failure": "leave the builder server up on failure and print the ssh command (with its key file) "
                       "to debug it",
    "ssh_timeout": "seconds the builder may take to accept SSH and finish cloud-init (default 300)",
    "events": "write live events (one JSON object per line; docs/reference/events.md) to this file; - for stdout",
    "force": "build even if a snapshot of the same inputs (its inputs-hash label) is younger than --max-age",
    "max_age": "days a snapshot of the same inputs is reused for instead of building (default 7, so that "
               "security updates still arrive weekly)",
    "from": "grow from a snapshot of the profile (`latest` or an id) instead of the base image: packages upgraded, "
            "the idempotent playbooks re-run (only changes do work), checked, cleaned; labelled parent-snapshot",
    "run_id": RUN_ID_HELP,
    "agent_bundle": "agent code baked into the snapshot's code directory (a directory or .tar.gz; default: the "
                    "profile's `bundle:`), its install step run (npm ci --omit=dev with a package-lock.json); the "
                    "snapshot is labelled bundle-digest and provisioning the same code stages nothing",
    "image": "container image baked into Docker's storage, besides the profile's `images:` (repeatable): a registry "
             "reference, or a `docker save` archive (.tar; on the local cloud, which reaches no registry)",
    **{k: v.replace("the servers", "the builder") for k, v in NETWORK_HELP.items()},
    "ipv4": "--ipv4 / --no-ipv4: the builder with a public IPv4, or IPv6-only (its packages from mirrors that answer "
            "on IPv6), which needs an IPv6 route from this machine (default IMAGEKIT_IPV4, else --ipv4)",
    **TOKEN_HELP,
}, iterable=["image", "network"], klass=LetterFlags)
def build_snapshot(c: Context, profile: str = "agent", base_image: str | None = None, server_type: str | None = None,
                   location: str | None = None, name: str = "imagekit-{profile}-{build_id}",
                   package_source: str | None = None, json: bool = False, keep_on_failure: bool = False,
                   ssh_timeout: int = 300, events: str | None = None, force: bool = False, max_age: str | None = None,
                   from_: str | None = None, run_id: str | None = None, agent_bundle: str | None = None,
                   image: list[str] | None = None, token_env: str | None = None, token_file: str | None = None,
                   network: list[str] | None = None, ssh_via: str | None = None,
                   ipv4: bool = True, arch: str | None = None, arm_server_type: str | None = None) -> None:
    """Bake, verify and snapshot the golden image; prints the snapshot id. A snapshot of the same inputs younger
    than --max-age is reused instead (nothing is built) unless --force.

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from ..build import BuildOptions, build_snapshot

    def build(target: Target) -> dict[str, Any]:
        check_events(events, json)
        days = BuildOptions.max_age if max_age is None else number("--max-age", max_age, "days")
        networks, via = settings.networks(network, ssh_via)
        options = BuildOptions(profile=profile, base_image=settings.choose(base_image, "IMAGEKIT_BASE_IMAGE"),
                               server_type=settings.choose(server_type, "IMAGEKIT_SERVER_TYPE"),
                               arch=settings.arch(arch),
                               arm_server_type=settings.choose(arm_server_type, "IMAGEKIT_ARM_SERVER_TYPE"),
                               location=settings.choose(location, "IMAGEKIT_LOCATION"), name=name,
                               keep_on_failure=keep_on_failure, package_source=package_source,
                               ssh_timeout=number("--ssh-timeout", ssh_timeout), events=events, force=force,
                               max_age=days, parent=from_, run_id=run_id, agent_bundle=path(agent_bundle),
                               images=list(image or []), networks=networks, ssh_via=via,
                               ipv4=settings.ipv4(given_flag("ipv4", ipv4)))
        result = build_snapshot(target, options, say)
        several = "snapshots" in result  # --arch with more than one: `ARCH ID` lines, outputs snapshot_id_ARCH
        for one in result.get("snapshots", [result]):
            if os.environ.get("GITHUB_OUTPUT"):
                with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
                    fh.write(f"snapshot_id{'_' + one['architecture'] if several else ''}={one['snapshot_id']}\n")
            done = "reused" if one["reused"] else f"built in {one['seconds']} s"
            say(f"{one['architecture']} snapshot {one['snapshot_id']} ({one['description']}) {done}")
        return result

    run("build-snapshot", build, json=json, token_env=token_env, token_file=token_file,
        text=lambda r: "\n".join(f"{s['architecture']} {s['snapshot_id']}" for s in r["snapshots"]) if "snapshots" in r
        else str(r["snapshot_id"]))


@task(help={"snapshot": "snapshot id, or `latest` for the newest available snapshot of the profile",
            "profile": "the profile `latest` picks from (default agent)",
            "server_type": "type of the throw-away server (default cx23)", **TOKEN_HELP})
def verify(c: Context, snapshot: str = "latest", profile: str = "agent", server_type: str = "cx23",
           token_env: str | None = None, token_file: str | None = None) -> None:
    """Boot a throw-away server from a snapshot, run the image's testinfra checks and clone checks, delete it.

    Exit 125 when something it made could not be removed: a warning line names each and the command that removes
    it (with --json also under "leftovers")."""
    from ..verify import verify_snapshot

    result = run("verify", lambda t: verify_snapshot(t, snapshot, server_type, say, profile=profile),
                  token_env=token_env, token_file=token_file)
    say(f"snapshot {result['snapshot_id']} verified")


@task(help={"older_than": "a grace on top of each lease and TTL: sweep only what no lease has covered, or what "
                          "expired, this many minutes ago (default 0)",
            "role": "builder (builds' and verifications' servers and keys), provision (provisioning runs' keys "
                    "and half-made agent servers), job (jobs' servers and keys), pool (pool hosts a fill was "
                    "making) or all (default; also round trip and bench servers)",
            "run": "sweep what the run of this id (its --run-id) left, whatever its lease: a cancelled run's cleanup",
            "json": "print what was deleted as JSON", **TOKEN_HELP})
def gc(c: Context, older_than: float = 0.0, role: str = "all", run_: str | None = None, json: bool = False,
       token_env: str | None = None, token_file: str | None = None) -> None:
    """Delete what runs that are gone left: builders, half-made agents and pool hosts, jobs, temporary SSH keys.

    Only what no live lease covers (its run renews the lease while it works), or with --run, one run's; and agents,
    pool hosts and jobs whose --ttl has passed (with their Tailscale devices). Pool hosts are deleted once reserved
    as a claim does (needs SSH_PRIVATE_KEY_PATH); ready agents and pool hosts without a TTL never."""
    from .. import runid
    from ..fleet.gc import collect_garbage

    def check() -> str | None:
        return None if run_ is None else runid.given(run_)

    run("gc", lambda t, which: collect_garbage(t, number("--older-than", older_than), say, role, which),
        prepare=check, json=json, token_env=token_env, token_file=token_file, text=lambda r: say(render.gc(r)))


@task(help={"keep": "snapshots to keep per profile and architecture, newest first (default 3)",
            "profile": "only this profile (default: every profile)",
            "dry_run": "say what would be deleted, delete nothing", "json": "print the result as JSON",
            **TOKEN_HELP})
def prune_snapshots(c: Context, keep: int = 3, profile: str | None = None, dry_run: bool = False, json: bool = False,
                    token_env: str | None = None, token_file: str | None = None) -> None:
    """Delete all but the newest N snapshots of each profile and architecture (x86 and arm: N of each)."""
    from ..fleet.prune import prune_snapshots as prune

    run("prune-snapshots", lambda t: prune(t, whole_number("--keep", keep), profile, say, dry_run), json=json,
        token_env=token_env, token_file=token_file,
        text=lambda r: say(f"{'would delete' if dry_run else 'deleted'} {len(r['deleted'])} snapshot(s)"))
