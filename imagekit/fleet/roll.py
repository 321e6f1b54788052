"""``roll``: agents onto a newer snapshot of their profile, batch by batch, without a gap in service.

For each agent that runs another image than the target: its code, agent id, API URL and secrets are read
from its running host over SSH; a replacement boots from the target under a temporary name (server names
are unique in a project) with the agent's name as its hostname and Tailscale hostname, labelled with the
agent's labels plus ``rolling-from=<old server id>`` and half-made; it is configured over SSH with what was
carried and waited for exactly as a new agent is. Only then is the old server deleted (with the Tailscale
devices it enrolled, not the replacement's) and the replacement renamed to the agent's name: until that
moment the old host serves, and a replacement that fails is deleted. From the deletion on, nothing deletes
the replacement.

Running an interrupted roll again finishes it: a ready replacement takes over; a half-made one whose run
died is deleted and made anew; one whose old server is already gone gets the agent's name."""

from __future__ import annotations

import base64
import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import agentid, profiles, secretfile, tailnet
from .. import events as live
from ..agentconf import STAGE_AND_CONFIGURE, AgentConfig, check_api_url
from ..cloud import actions, api, lookups
from ..errors import CloudError, HostError, InputError
from ..host import probe, ssh
from ..pipeline import StepFailed, in_workers, run_steps
from ..provision import halfmade, userdata
from ..provision.agent import Agent, AgentRunning, AuthKey, Boot, CreateAgentServer, Enrolled
from ..provision.options import ProvisionOptions
from ..provision.state import Run
from ..steps.firewall import ProfileFirewall
from ..steps.operator import operator_keys
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import DELETE_TIMEOUT, delete
from ..target import Target
from .selection import agent_servers

ROLLING = "rolling-from"
SSH_TIMEOUT = 15


@dataclass
class RollOptions:
    to: str = "latest"  # a snapshot id, or the newest of the profile
    agent_ids: list[str] = field(default_factory=list)
    selector: str | None = None
    profile: str = "agent"
    batch: int = 1
    timeout: float | None = None  # seconds per replacement to be ready (default: provision's)
    in_place: bool = False  # rebuild each agent's own server (same id and address, an outage) instead
    events: str | None = None


class RollRun(Run):
    """provision's run, for replacements: they wait for imagekit, which configures them over SSH."""

    def config(self, agent: str, auth_key: str | None) -> AgentConfig:
        return dataclasses.replace(super().config(agent, auth_key), over_ssh=True)


@dataclass
class Replacement(Agent):
    name: str = ""  # the agent's server name, which the replacement takes over
    old: object | None = None  # the server it replaces; None once an earlier run deleted it
    code: bytes = b""
    secrets_env: bytes | None = field(default=None, repr=False)
    target: object | None = None  # the snapshot it boots
    steps: list = field(default_factory=list)
    in_place: bool = False
    authorized_keys: str | None = None  # in place: the keys the host had (the rebuild brings back its creation's)
    rebuilding_since: datetime | None = None


def temporary_name(name: str, old_id: int) -> str:
    """The replacement's name until it takes over: unique per old server, so a second roll of the same agent
    meets it (and is refused) instead of making another."""
    return f"{name[:44]}-roll-{old_id}"


class CarryFromOldHost:
    """What the agent is, read from the host that runs it: code, AGENT_ID, API_URL and secrets (in memory only)."""

    name = "read old host"

    def run(self, a: Replacement) -> None:
        ip, profile = a.old.public_net.ipv4.ip, a.run.profile
        try:
            conn = ssh.connect(ip, a.keypair, timeout=SSH_TIMEOUT, connect_timeout=SSH_TIMEOUT)
        except Exception as exc:  # the old host is untouched; it is its own problem to fix first
            raise HostError(f"SSH to the agent's host {ip} failed: {exc or type(exc).__name__}") from None
        try:
            # The running agent's code, packed on its host: it travels over SSH (it may not fit in user data).
            code, packed = probe.sh(conn, f"tar -C {profile.code_dir} -czf - . | base64 -w0", timeout=120)
            if code != 0:
                raise HostError(f"packing the agent's code on {ip} failed (exit {code}): {packed[-300:]}")
            a.code = base64.b64decode(packed)
            code, env = probe.sh(conn, f"cat {profile.env_file}")
            if code != 0:
                raise HostError(f"{profile.env_file} is missing on {ip}: is this a configured agent host?")
            values = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
            a.secrets_env = secretfile.read(conn, profile.secrets_file)
            if a.in_place:
                a.authorized_keys = probe.sh(conn, "cat /root/.ssh/authorized_keys")[1]
        finally:
            conn.close()
        carried = values.get("AGENT_ID", a.name)
        a.agent_id = carried if _names(carried, a.name) else a.name
        a.run.api_url = check_api_url(values.get("API_URL", ""))

    def cleanup(self, a: Replacement) -> None:
        pass


def _names(agent: str, name: str) -> bool:
    try:
        return agentid.server_name(agent) == name
    except InputError:
        return False


class ConfigureCarried:
    """The old host's secrets and code on the replacement, then the agent's start (its user data staged the rest)."""

    name = "configure agent"

    def run(self, a: Replacement) -> None:
        if a.authorized_keys is not None:  # only the keys the host had, not its creation's temporary key
            ssh.must(a.conn, "umask 077 && cat > /root/.ssh/authorized_keys.new && "
                             "mv /root/.ssh/authorized_keys.new /root/.ssh/authorized_keys",
                     "restoring the host's SSH keys", stdin=a.authorized_keys.encode())
        if a.secrets_env is not None:
            secretfile.write(a.conn, a.run.profile.secrets_file, a.secrets_env, owner=a.run.profile.user)
        ssh.must(a.conn, STAGE_AND_CONFIGURE, "configuring the agent", stdin=a.code)
        a.event("configured", "code and secrets carried over" if a.secrets_env else "code carried over")

    def cleanup(self, a: Replacement) -> None:
        pass


def _drop_nodes(a: Replacement, since: datetime, until: datetime) -> None:
    """The old host's Tailscale nodes: the agent's hostname, enrolled between ``since`` and ``until``."""
    tn = a.run.tailnet
    if tn is None:
        return
    try:
        for device in tn.devices_of(a.name, since, until=until):
            tn.delete_device(device["id"])
    except tailnet.TailnetError as exc:
        a.progress(f"[{a.name}] the old host's Tailscale node was not removed ({exc}); it is ephemeral and goes "
                   "away once offline")


class Rebuild:
    """--in-place: the agent's own server from the target, with user data made now (a fresh single-use key;
    the user data it was created with holds one revoked long ago). Labelled rebuilding until its agent runs."""

    name = "rebuild"

    def run(self, a: Replacement) -> None:
        data = userdata.render(a.run.config(a.agent_id, a.secret), a.run.bundle)
        labels = {**(a.server.labels or {}), "mode": "snapshot", **halfmade.REBUILDING.label(time.time() + a.timeout)}
        a.server = a.client.servers.update(a.server, labels=labels)
        a.rebuilding_since = datetime.now(timezone.utc)
        a.action_id = a.client.servers.rebuild(a.server, a.target, user_data=data).action.id
        a.event("rebuilding", f"server {a.server.id} from snapshot {a.target.id}")

    def cleanup(self, a: Replacement) -> None:
        pass


class DropOldNodes:
    name = "old tailscale nodes"

    def run(self, a: Replacement) -> None:
        _drop_nodes(a, a.old.created, a.rebuilding_since)

    def cleanup(self, a: Replacement) -> None:
        pass


class Rebuilt:
    name = "take over"

    def run(self, a: Replacement) -> None:
        a.server = halfmade.REBUILDING.cleared(a.client, a.server)
        a.event("took over", f"server {a.server.id} rebuilt from snapshot {a.target.id}")

    def cleanup(self, a: Replacement) -> None:
        pass


class DiscardStale:
    """A replacement left by a roll that died before it was ready (or made for another snapshot) goes first."""

    name = "discard stale replacement"

    def __init__(self, stale):
        self.stale = stale

    def run(self, a: Replacement) -> None:
        a.progress(f"[{a.name}] deleting the replacement {self.stale.id} an earlier roll left")
        delete(a.client, self.stale, f"deleting the stale replacement {self.stale.id}")
        tailnet.remove_devices(a.run.target, [self.stale], a.progress, a.run.tailnet)

    def cleanup(self, a: Replacement) -> None:
        pass


class TakeOver:
    """The old server goes, the replacement takes the agent's name; the old host's Tailscale devices go last
    (only those created before the replacement existed)."""

    name = "take over"

    def run(self, a: Replacement) -> None:
        new, old = a.server, a.old
        if old is not None:
            deleting = a.client.servers.delete(old)  # refused (protected, locked): the old host keeps serving
            a.committed = True  # accepted: the old server is going, so from here on the replacement is the agent
            actions.wait(a.client, deleting, DELETE_TIMEOUT, f"deleting the old server {old.id}")
            a.event("old server deleted", f"server {old.id}")
        a.committed = True
        labels = {k: v for k, v in (new.labels or {}).items() if k != ROLLING}
        try:
            a.server = a.client.servers.update(new, name=a.name, labels=labels)
        except Exception as exc:
            raise CloudError(f"renaming server {new.id} to {a.name} failed ({api.explain(exc)}): it serves the agent "
                             "under its temporary name; run the roll again to finish") from None
        if old is not None:
            _drop_nodes(a, old.created, new.created)
        a.event("took over", f"server {new.id} is {a.name}")

    def cleanup(self, a: Replacement) -> None:
        pass


class Roll:
    """The whole roll: target, agents, batches; each replacement its own pipeline in a worker thread."""

    def __init__(self, target: Target, options: RollOptions, progress):
        if options.batch < 1:
            raise InputError(f"--batch {options.batch}: give at least 1")
        if options.timeout is not None and options.timeout <= 0:
            raise InputError(f"--timeout {options.timeout}: give a number of seconds above 0")
        self.options, self.progress = options, progress
        client = api.connect(target)
        plan = ProvisionOptions(agent_ids=[], mode="snapshot", profile=options.profile, timeout=options.timeout)
        self.shared = RollRun(target=target, client=client, progress=progress, mode="snapshot", options=plan,
                              profile=profiles.load(options.profile))
        self.targets: dict[str, object] = {}

    def snapshot_for(self, server):
        """The target snapshot for a server's architecture (looked up once per architecture)."""
        arch = server.server_type.architecture
        if arch not in self.targets:
            self.targets[arch] = lookups.own_snapshot(self.shared.client, self.options.to, self.options.profile, arch)
        return self.targets[arch]

    def plan(self) -> tuple[list[dict], list[Replacement]]:
        """Rows for agents with nothing to do (or that cannot be rolled), and the replacements to run."""
        r, o = self.shared, self.options
        servers = agent_servers(r.client, o.agent_ids, ",".join(filter(None, [f"profile={o.profile}", o.selector])))
        groups: dict[str, list] = {}
        for server in servers:
            groups.setdefault((server.labels or {}).get("agent-id") or server.name, []).append(server)
        if not groups:
            raise InputError(f"no agent of profile '{o.profile}' matches: check --agent-id / --selector with "
                             "`invoke list`")
        rows, todo = [], []
        for name, group in sorted(groups.items()):
            old = next((s for s in group if s.name == name and ROLLING not in (s.labels or {})), None)
            stale = [s for s in group if ROLLING in (s.labels or {})]
            target = self.snapshot_for(old or stale[0])
            row = _row(name, old, target)
            if why := next((halfmade.busy(s) for s in stale if halfmade.busy(s)), None):
                rows.append({**row, "status": "failed", "error": f"another roll is at work: {why}"})
                continue
            ready = next((s for s in stale if halfmade.deadline(s) is None and s.image and s.image.id == target.id),
                         None)
            discard = [s for s in stale if s is not ready]
            if old is None and ready is None:
                rows.append({**row, "status": "failed", "error": "its server is gone: provision the agent again"})
                continue
            if ready is None and old.image is not None and old.image.id == target.id \
                    and (old.labels or {}).get("mode") == "snapshot":
                rows.append({**row, "status": "current"})
                continue
            if old is not None and halfmade.REBUILDING.of(old) is not None:
                rows.append({**row, "status": "failed", "error": (
                    "another in-place roll is at work on it" if not halfmade.REBUILDING.passed(old) else
                    "an in-place roll of it died after the rebuild, so its code and secrets went with the old disk: "
                    "bring them back with `invoke update --agent-bundle ... --secrets-file ...` (then remove its "
                    f"{halfmade.REBUILDING.key} label), or deprovision and provision it again")})
                continue
            if ready is None and (old.status != "running" or halfmade.deadline(old) is not None):
                rows.append({**row, "status": "failed", "error": f"not a ready, running agent (server {old.status}): "
                                                                 "provision it first"})
                continue
            todo.append(self.replacement(name, old, ready, discard, target) if ready or not o.in_place
                        else self.rebuilt_in_place(name, old, discard, target))
        return rows, todo

    def replacement(self, name: str, old, ready, discard: list, target) -> Replacement:
        r = self.shared
        base = old or ready
        enrol = (base.labels or {}).get("tailscale") != "no"
        run = dataclasses.replace(r, image=target, server_type=base.server_type, locations=[base.location],
                                  options=dataclasses.replace(r.options, tailscale=enrol))
        labels = {k: v for k, v in (base.labels or {}).items() if k not in (ROLLING, halfmade.LABEL)}
        labels.update(mode="snapshot", **{ROLLING: str(old.id if old else 0)},
                      **halfmade.label(time.time() + run.timeout()))
        a = Replacement(client=r.client, progress=r.progress, resource_name=temporary_name(name, old.id if old else 0),
                        timeout=run.timeout(), cancel=r.cancel, run=run, agent_id=name, labels=labels, name=name,
                        old=old, target=target, steps=[DiscardStale(s) for s in discard])
        if ready is not None:  # an earlier roll got this far: it only has to take over
            a.server = ready
            a.steps += [TakeOver()]
        else:
            a.steps += [CarryFromOldHost(), AuthKey(), CreateAgentServer(), Boot(), WaitSSH(), WaitCloudInit(),
                        Enrolled(), ConfigureCarried(), AgentRunning(), halfmade.MarkReady(), TakeOver()]
        return a

    def rebuilt_in_place(self, name: str, old, discard: list, target) -> Replacement:
        """--in-place: the agent's own server rebuilt; it is the agent throughout, so no cleanup deletes it."""
        r = self.shared
        enrol = (old.labels or {}).get("tailscale") != "no"
        run = dataclasses.replace(r, image=target, options=dataclasses.replace(r.options, tailscale=enrol))
        return Replacement(client=r.client, progress=r.progress, resource_name=name, timeout=run.timeout(),
                           cancel=r.cancel, run=run, agent_id=name, labels=dict(old.labels or {}), name=name, old=old,
                           server=old, ip=old.public_net.ipv4.ip, committed=True, in_place=True, target=target,
                           steps=[*[DiscardStale(s) for s in discard], CarryFromOldHost(), AuthKey(), Rebuild(),
                                  Boot(), WaitSSH(), WaitCloudInit(), Enrolled(), DropOldNodes(), ConfigureCarried(),
                                  AgentRunning(), Rebuilt()])

    def prepare(self, todo: list[Replacement]) -> None:
        """What every replacement needs, checked before anything is made: the operator's key (the way into the
        old and the new hosts), the tailnet when one enrols, the profile's firewall, one action poller."""
        r = self.shared
        r.operator_key, r.keypair = operator_keys(r.client, "roll reads each agent's code and secrets from its host "
                                                  "and checks its replacement over SSH with your key")
        if any(a.run.enrols for a in todo):
            creds = tailnet.credentials(r.target)
            r.tags, r.tailnet = creds.tags, tailnet.Tailnet(creds)
            r.tailnet.authenticate()
        r.todo = [a.name for a in todo]
        ProfileFirewall().run(r)
        r.watcher = actions.ActionWatcher(r.client)
        for a in todo:  # the shared parts reach each replacement's own copy of the run
            enrol = a.run.enrols
            a.keypair = r.keypair
            a.run = dataclasses.replace(a.run, operator_key=r.operator_key, keypair=r.keypair, firewall=r.firewall,
                                        watcher=r.watcher, tags=r.tags, tailnet=r.tailnet if enrol else None,
                                        events=r.events)

    def replace_one(self, a: Replacement) -> dict:
        t0 = time.monotonic()
        row = _row(a.name, a.old, a.target)
        try:
            run_steps(a.steps, a, lambda line: None, a.run.events.step_reporter(a.name))
        except StepFailed as exc:
            self.progress(f"[{a.name}] failed: {exc}")
            a.run.events.emit("failed", agent=a.name, detail=str(exc))
            kept = a.committed and a.server is not None
            if a.in_place:
                serving = "" if a.rebuilding_since else "; the host was not touched and still serves the agent"
            else:
                serving = "" if a.committed or a.old is None else "; the old server still serves the agent"
            return {**row, "status": "failed", "error": str(exc) + serving,
                    "new_server_id": a.server.id if kept else None}
        self.progress(f"[{a.name}] rolled onto snapshot {a.target.id}: server {a.server.id} "
                      f"({time.monotonic() - t0:.1f} s)")
        return {**row, "status": "rolled", "new_server_id": a.server.id, "seconds": round(time.monotonic() - t0, 2)}

    def run(self) -> dict:
        r, o = self.shared, self.options
        rows, todo = self.plan()
        with live.stream(o.events, r.deployment, command="roll", agents=[a.name for a in todo]) as r.events:
            if todo:
                self.prepare(todo)
            stopped = any(row["status"] == "failed" for row in rows)
            batches = [todo[i:i + o.batch] for i in range(0, len(todo), o.batch)]
            try:
                for number, group in enumerate(batches, 1):
                    if stopped:
                        rows += [{**_row(a.name, a.old, a.target), "status": "not rolled",
                                  "error": "an earlier batch failed: the roll stopped"} for a in group]
                        continue
                    names = ", ".join(a.name for a in group)
                    self.progress(f"batch {number}/{len(batches)}: {names}")
                    r.events.emit("batch started", detail=f"{number}/{len(batches)}: {names}")
                    done = in_workers(self.replace_one, group, workers=len(group), cancel=r.cancel, name="roll",
                                      interrupted=lambda: self.progress(
                                          "interrupted: every replacement not yet in service is deleted; its old "
                                          "host keeps serving"))
                    rows += done
                    stopped = any(row["status"] != "rolled" for row in done)
            finally:
                if r.watcher is not None:
                    r.watcher.close()
            r.events.outcome = "failed: the roll stopped" if stopped else \
                f"succeeded: {sum(row['status'] == 'rolled' for row in rows)} agent(s) rolled"
        return {"run_id": r.deployment, "to": sorted({t.id for t in self.targets.values()}),
                "agents": sorted(rows, key=lambda row: row["agent_id"]), "stopped": stopped}


def _row(name: str, old, target) -> dict:
    old_image = old.image.id if old is not None and old.image is not None and \
        (old.labels or {}).get("mode") == "snapshot" else None
    return {"agent_id": name, "old_server_id": old.id if old is not None else None, "new_server_id": None,
            "old_snapshot_id": old_image, "new_snapshot_id": target.id, "status": None, "seconds": None,
            "error": None}


def roll_fleet(target: Target, options: RollOptions, progress) -> dict:
    """Roll the chosen agents onto the target snapshot; the result lists each with its old and new server."""
    return Roll(target, options, progress).run()
