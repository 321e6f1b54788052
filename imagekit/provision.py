"""``provision``: agent ids → ready agent hosts, from the newest snapshot or by full install.

The run is a pipeline (imagekit.pipeline): check every input before anything exists →
temporary SSH key → the profile's firewall → the agents, each its own small pipeline in a
worker thread (auth key → server → boot → SSH → cloud-init → [fallback: playbooks +
configure] → agent running). A failing agent unwinds only its own steps (its server, its
Tailscale key and device); Ctrl-C cancels every worker and each unwinds.
"""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from hcloud import APIException, Client
from hcloud.firewalls import BoundFirewall, FirewallRule
from hcloud.images import BoundImage
from hcloud.server_types import BoundServerType

from . import agentid, cloudapi, playbook, settings, ssh, tailnet, userdata
from .build import STANDIN_APT_SOURCE, BuildOptions, TemporaryKey, playbook_variables
from .keys import KeyPair, load_ed25519
from .pipeline import Interrupted, StepFailed, ignoring_signals
from .target import Target

MODES = ("auto", "snapshot", "fallback")
LOCAL_API_URL = "http://127.0.0.1:3000"  # placeholder on the local cloud: the example agent only logs it
FIREWALL_RULES = [("tcp", "22", "SSH"), ("udp", "41641", "Tailscale (WireGuard)")]
AGENT_START_GRACE = 60
AGENT_STABLE = 0.5  # seconds the agent's process must have lived to count as running


@dataclass
class ProvisionOptions:
    agent_ids: list[str]
    mode: str = "auto"
    snapshot: str | None = None  # id; default HETZNER_SNAPSHOT_ID, else the newest of the profile
    profile: str = "agent"
    server_type: str = "cx23"
    location: str | None = None
    base_image: str = "debian-12"  # fallback mode's stock image
    api_url: str | None = None  # default AURA_API_URL
    tailscale: bool = True
    wait: bool = True
    timeout: float | None = None  # seconds per agent; default 600 (snapshot) or 1800 (fallback)
    parallel: int = 5
    agent_bundle: Path | None = None
    ssh_key: str | None = None  # HETZNER_SSH_KEY_ID: an id or name added to every server
    package_source: str | None = None


@dataclass
class Fleet:
    """What the whole run shares."""

    target: Target
    client: Client
    options: ProvisionOptions
    progress: object
    deployment: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3))
    mode: str = ""
    image: BoundImage | None = None
    server_type: BoundServerType | None = None
    operator_key: object | None = None
    tailnet: tailnet.Tailnet | None = None
    tags: tuple[str, ...] = ()
    api_url: str = ""
    bundle: bytes = b""
    existing: dict[str, object] = field(default_factory=dict)  # server name → server
    todo: list[str] = field(default_factory=list)  # agent ids without a server
    keypair: KeyPair | None = None
    ssh_key: object | None = None
    firewall: BoundFirewall | None = None
    firewall_created: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    watcher: cloudapi.ActionWatcher | None = None
    agents: list[dict] = field(default_factory=list)
    failed: bool = False

    @property
    def labels(self) -> dict[str, str]:  # the temporary key's; gc sweeps these by role and age
        return cloudapi.labels(role="provision", deployment=self.deployment)

    @property
    def resource_name(self) -> str:
        return f"imagekit-provision-{self.deployment}"

    def keep(self) -> bool:
        return False

    def timeout(self) -> float:
        return self.options.timeout or (1800.0 if self.mode == "fallback" else 600.0)


# --- the run's steps ------------------------------------------------------------------------


class CheckInputs:
    """Everything that can be wrong is found here, before anything is created."""

    name = "check inputs"

    def run(self, f: Fleet) -> None:
        o, c = f.options, f.client
        if o.mode not in MODES:
            raise ValueError(f"--mode {o.mode!r}: choose one of {', '.join(MODES)}")
        if o.parallel < 1:
            raise ValueError(f"--parallel {o.parallel}: give at least 1")
        if o.timeout is not None and o.timeout <= 0:
            raise ValueError(f"--timeout {o.timeout}: give a number of seconds above 0")
        names = [agentid.server_name(a) for a in o.agent_ids]
        f.server_type = c.server_types.get_by_name(o.server_type)  # the first request also checks the token
        if f.server_type is None:
            raise cloudapi.CloudError(f"server type '{o.server_type}' does not exist; choose one of: "
                                      + ", ".join(t.name for t in c.server_types.get_all()))
        if o.location and c.locations.get_by_name(o.location) is None:
            raise cloudapi.CloudError(f"location '{o.location}' does not exist; choose one of: "
                                      + ", ".join(loc.name for loc in c.locations.get_all()))
        f.mode, f.image = self._image(f)
        if f.mode == "fallback" and not o.wait:
            raise ValueError("fallback mode installs over SSH and cannot skip waiting: drop --no-wait")
        f.operator_key = self._operator_key(c, settings.choose(o.ssh_key, "HETZNER_SSH_KEY_ID"))
        if path := settings.get("SSH_PRIVATE_KEY_PATH"):
            f.keypair = self._own_key(path, f.operator_key)
        f.api_url = api_url(o.api_url, f.target.local)
        f.bundle = userdata.bundle(o.agent_bundle)
        if o.tailscale:
            ts = tailnet.settings(f.target)
            f.tags = ts.tags
            f.tailnet = tailnet.Tailnet(ts)
            f.tailnet.authenticate()
        managed = c.servers.get_all(label_selector=cloudapi.selector(role="agent"))
        f.existing = {s.name: s for s in managed if s.name in names}
        f.todo = [agent for agent, name in zip(o.agent_ids, names, strict=True) if name not in f.existing]
        for agent in f.todo:  # the real key is as long as this one: the size check holds
                userdata.check_size(userdata.render(self.config(f, agent, "tskey-auth-" + "x" * 60), f.bundle), agent)

    @staticmethod
    def config(f: Fleet, agent: str, auth_key: str | None) -> userdata.AgentConfig:
        local_source = (f.options.package_source or ("local" if f.target.local else "vendor")) == "local"
        return userdata.AgentConfig(
            agent_id=agent, server_name=agentid.server_name(agent), api_url=f.api_url, mode=f.mode,
            deployment=f.deployment, image=str(f.image.id if f.mode == "snapshot" else f.image.name),
            tags=f.tags, auth_key=auth_key if f.options.tailscale else None,
            standin_apt_source=STANDIN_APT_SOURCE if local_source else None)

    @staticmethod
    def _image(f: Fleet) -> tuple[str, BoundImage]:
        o, c, arch = f.options, f.client, f.server_type.architecture
        wanted = settings.choose(o.snapshot, "HETZNER_SNAPSHOT_ID")
        if o.mode != "fallback" and wanted:
            try:
                image = c.images.get_by_id(int(wanted))
            except (ValueError, APIException):
                image = None
            if image is None or image.type != "snapshot" or image.status != "available":
                raise cloudapi.CloudError(
                    f"snapshot {wanted!r} not found: list snapshots with `invoke list`, build one with "
                    "`invoke build-snapshot`, or provision without one with --mode fallback")
            if image.architecture != arch:
                raise cloudapi.CloudError(f"snapshot {image.id} is {image.architecture} but server type "
                                          f"{f.server_type.name} is {arch}: pick a matching --server-type")
            return "snapshot", image
        if o.mode != "fallback":
            # No status= filter: hcloud-python's get_all sends per_page in its place (status=50).
            snaps = [i for i in c.images.get_all(type=["snapshot"], architecture=[arch], sort=["created:desc"],
                                                 label_selector=cloudapi.selector(profile=o.profile))
                     if i.status == "available"]
            if snaps:
                return "snapshot", snaps[0]
            if o.mode == "snapshot":
                raise cloudapi.CloudError(f"no snapshot of profile '{o.profile}' ({arch}) exists: build one with "
                                          "`invoke build-snapshot`, or use --mode fallback")
            f.progress(f"no snapshot of profile '{o.profile}' ({arch}) exists: falling back to a full install "
                       f"on {o.base_image} (minutes, not seconds; `invoke build-snapshot` makes it fast)")
        base = c.images.get_by_name_and_architecture(o.base_image, arch)
        if base is None:
            raise cloudapi.CloudError(f"base image '{o.base_image}' ({arch}) does not exist; "
                                      "list images with `hcloud image list --type system`")
        return "fallback", base

    @staticmethod
    def _operator_key(c: Client, ident: str | None):
        if not ident:
            return None
        try:
            key = c.ssh_keys.get_by_id(int(ident)) if ident.isdigit() else c.ssh_keys.get_by_name(ident)
        except APIException as exc:
            if exc.code != "not_found":
                raise
            key = None
        if key is None:
            raise cloudapi.CloudError(f"HETZNER_SSH_KEY_ID {ident!r}: no such SSH key in this project; "
                                      "list keys with `hcloud ssh-key list`")
        return key

    @staticmethod
    def _own_key(path: str, operator_key) -> KeyPair:
        """The operator's private key: readiness checks use it instead of a temporary key."""
        pair = load_ed25519(path)
        if operator_key is None or operator_key.public_key.split()[1] != pair.public_openssh.split()[1]:
            raise ValueError(f"SSH_PRIVATE_KEY_PATH {path} is not the private half of HETZNER_SSH_KEY_ID: set "
                             "HETZNER_SSH_KEY_ID to the Hetzner key made from its public key")
        return pair

    def cleanup(self, f: Fleet) -> None:
        pass


class ProvisionKey(TemporaryKey):
    """The run's temporary SSH key: how imagekit checks readiness; removed from every host at the end.
    Not needed when the operator's own key is at hand (SSH_PRIVATE_KEY_PATH)."""

    name = "temporary SSH key"

    def run(self, f: Fleet) -> None:
        if f.todo and f.keypair is None:
            super().run(f)


class ProfileFirewall:
    """One labelled Hetzner firewall per profile (22/tcp and 41641/udp in), created once and reused."""

    name = "firewall"

    def run(self, f: Fleet) -> None:
        labels = cloudapi.labels(role="firewall", profile=f.options.profile)
        name = f"imagekit-{f.options.profile}"
        if not f.todo:
            return
        found = f.client.firewalls.get_all(label_selector=cloudapi.selector(role="firewall", profile=f.options.profile))
        if found:
            f.firewall = found[0]
            return
        rules = [FirewallRule(direction="in", protocol=proto, port=port, source_ips=["0.0.0.0/0", "::/0"],
                              description=what) for proto, port, what in FIREWALL_RULES]
        try:
            f.firewall = f.client.firewalls.create(name=name, rules=rules, labels=labels).firewall
            f.firewall_created = True
        except APIException as exc:
            if exc.code != "uniqueness_error":
                raise
            f.firewall = f.client.firewalls.get_by_name(name)  # made meanwhile by a concurrent run, or by hand
            if f.firewall is None or (f.firewall.labels or {}).get("managed-by") != "imagekit":
                raise cloudapi.CloudError(f"a firewall named '{name}' exists but imagekit did not make it: "
                                          "rename or delete it, or label it managed-by=imagekit,role=firewall,"
                                          f"profile={f.options.profile}") from None

    def cleanup(self, f: Fleet) -> None:
        # A firewall this run made is kept for the next runs, unless no server of this run is left on it.
        if f.firewall_created and not f.client.firewalls.get_by_id(f.firewall.id).applied_to:
            f.client.firewalls.delete(f.firewall)


class Agents:
    """Each agent in a worker thread; one agent's failure does not stop the others."""

    name = "agents"

    def run(self, f: Fleet) -> None:
        f.watcher = cloudapi.ActionWatcher(f.client)
        for agent in f.options.agent_ids:
            server = f.existing.get(agentid.server_name(agent))
            if server is not None:
                f.progress(f"[{server.name}] exists already: server {server.id} ({server.status}); nothing created")
                f.agents.append(_existing(agent, server))
        pool = ThreadPoolExecutor(max_workers=min(f.options.parallel, max(1, len(f.todo))), thread_name_prefix="agent")
        futures = [pool.submit(provision_agent, f, agent) for agent in f.todo]
        try:
            for fut in futures:
                while not fut.done():
                    time.sleep(0.1)  # short sleeps keep Ctrl-C responsive
        except KeyboardInterrupt:
            f.cancel.set()
            f.progress("interrupted: every agent is cleaning up what it created")
            with ignoring_signals():
                pool.shutdown(wait=True)
            raise
        finally:
            pool.shutdown(wait=True)
            f.watcher.close()
        f.agents.extend(fut.result() for fut in futures)

    def cleanup(self, f: Fleet) -> None:
        pass


def api_url(given: str | None, local: bool) -> str:
    """The agent's API: --api-url, else AURA_API_URL; on the local cloud a placeholder the example agent logs."""
    url = settings.choose(given, "AURA_API_URL") or (LOCAL_API_URL if local else "")
    if not url:
        raise ValueError("the agents' API URL is not set: set AURA_API_URL or pass --api-url")
    return userdata.check_api_url(url)


def _existing(agent: str, server) -> dict:
    return {"agent_id": agent, "server_id": server.id, "name": server.name, "ipv4": server.public_net.ipv4.ip,
            "mode": (server.labels or {}).get("mode"), "status": "existing", "seconds_to_ready": None,
            "error": None}


# --- one agent ------------------------------------------------------------------------------


@dataclass
class Agent:
    fleet: Fleet
    agent_id: str
    name: str
    started: float = field(default_factory=time.monotonic)
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    server: object | None = None
    action_id: int | None = None
    ip: str | None = None
    conn: paramiko.SSHClient | None = None
    events: dict[str, float] = field(default_factory=dict)
    failed: bool = False

    @property
    def deadline(self) -> float:
        return self.started + self.fleet.timeout()

    def event(self, what: str, detail: str = "") -> None:
        self.events[what] = round(time.monotonic() - self.started, 2)
        self.fleet.progress(f"[{self.name}] {what}{': ' + detail if detail else ''} ({self.events[what]:.1f} s)")

    def check(self, waiting_for: str) -> None:
        """Raise when the run was interrupted or this agent's deadline has passed."""
        if self.fleet.cancel.is_set():
            raise Interrupted("interrupted (Ctrl-C)")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"not ready within {self.fleet.timeout():.0f} s: still waiting for {waiting_for} "
                               "(raise --timeout, or look at the server's console/cloud-init log)")

    def sh(self, command: str, timeout: float = 120) -> tuple[int, str]:
        code, out, err = ssh.run(self.conn, command, timeout=timeout)
        return code, (out + err).strip()


class AuthKey:
    name = "tailscale auth key"

    def run(self, a: Agent) -> None:
        f = a.fleet
        if f.tailnet is not None:
            a.key_id, a.secret = f.tailnet.mint_auth_key(f"imagekit {a.name} {f.deployment}")

    def cleanup(self, a: Agent) -> None:
        f = a.fleet
        if f.tailnet is None:
            return
        # Single-use and used by now: revoked so the copy in the user data is worthless. Without
        # --wait nobody knows when the host used it; it then simply expires (tailnet.KEY_EXPIRY).
        if a.key_id and (a.failed or f.options.wait):
            f.tailnet.revoke_key(a.key_id)
        if a.failed:
            for device in f.tailnet.devices_of(a.name):
                f.tailnet.delete_device(device["id"])


class CreateServer:
    name = "create server"

    def run(self, a: Agent) -> None:
        f, o = a.fleet, a.fleet.options
        a.check("a worker")
        data = userdata.render(CheckInputs.config(f, a.agent_id, a.secret), f.bundle)
        userdata.check_size(data, a.agent_id)
        keys = [k for k in (f.ssh_key, f.operator_key) if k is not None]
        labels = cloudapi.labels(role="agent", profile=o.profile, mode=f.mode, deployment=f.deployment,
                                 **{"agent-id": a.name})
        resp = f.client.servers.create(
            name=a.name, server_type=f.server_type, image=f.image, ssh_keys=keys or None, user_data=data,
            labels=labels, firewalls=[f.firewall] if f.firewall else None,
            location=f.client.locations.get_by_name(o.location) if o.location else None)
        a.server = resp.server  # recorded before any wait, so a failed wait is still cleaned up
        a.action_id = resp.action.id
        a.ip = resp.server.public_net.ipv4.ip if resp.server.public_net and resp.server.public_net.ipv4 else None
        a.event("created", f"server {a.server.id}, {a.ip}, {f.mode} mode from image {f.image.id}")

    def cleanup(self, a: Agent) -> None:
        if a.failed and a.server is not None:
            cloudapi.wait(a.fleet.client.servers.delete(a.server), 300, f"deleting server {a.server.id}")
            a.fleet.progress(f"[{a.name}] server {a.server.id} deleted")


class Boot:
    name = "boot"

    def run(self, a: Agent) -> None:
        f = a.fleet
        f.watcher.watch(a.action_id)
        while True:
            status, error = f.watcher.status(a.action_id)
            if status == "success":
                break
            if status == "error":
                error = error or {}
                raise cloudapi.CloudError(f"creating server {a.server.id} failed: "
                                          f"{error.get('message', 'action ended in error')} ({error.get('code')})")
            a.check("the create action")
            time.sleep(0.1)
        if a.ip is None:
            a.server.reload()
            a.ip = a.server.public_net.ipv4.ip
        a.event("booting")

    def cleanup(self, a: Agent) -> None:
        pass


class WaitSSH:
    name = "ssh"

    def run(self, a: Agent) -> None:
        last: Exception | None = None
        while True:
            a.check(f"SSH on {a.ip} (last error: {last})")
            try:
                a.conn = ssh.connect(a.ip, a.fleet.keypair, timeout=10, connect_timeout=1)
                break
            except (OSError, paramiko.SSHException, EOFError) as exc:
                last = exc
                time.sleep(0.1)
        a.event("ssh")

    def cleanup(self, a: Agent) -> None:
        if a.conn is not None:
            a.conn.close()


class CloudInit:
    name = "cloud-init"

    def run(self, a: Agent) -> None:
        while True:
            a.check("cloud-init")
            code, out = a.sh("cloud-init status")
            if "status: done" in out:
                break
            if "status: error" in out or "status: disabled" in out:
                _, detail = a.sh("cloud-init status --long; tail -n 25 /var/log/cloud-init-output.log")
                raise RuntimeError(f"cloud-init finished with an error on {a.ip}:\n{detail[-2000:]}")
            time.sleep(0.3)
        a.event("cloud-init done")
        if a.fleet.tailnet is not None:
            _, out = a.sh("tailscale status --json")
            if '"BackendState": "Running"' not in out:
                raise RuntimeError(f"Tailscale did not enrol on {a.ip}: {out[-500:]}")
            a.event("enrolled", ",".join(a.fleet.tags))

    def cleanup(self, a: Agent) -> None:
        pass


class FullInstall:
    """Fallback only: the snapshot build's playbooks, then the same agent configuration."""

    name = "playbooks"

    def run(self, a: Agent) -> None:
        f = a.fleet
        opts = BuildOptions(profile=f.options.profile, base_image=f.options.base_image,
                            package_source=f.options.package_source)
        book = playbook.load(opts.profile, playbook_variables(opts, f.target.local, f"fallback-{f.deployment}"))
        with ssh.fabric_connection(a.ip, f.keypair) as conn:
            playbook.run(book, playbook.fabric_runner(conn),
                         progress=lambda line: f.progress(f"[{a.name}] {line.strip()}") if "[changed]" in line
                         or "[failed]" in line else None)
        code, out = a.sh("/usr/local/sbin/imagekit-configure-agent", timeout=300)
        if code != 0:
            raise RuntimeError(f"configuring the agent failed (exit {code}): {out[-1500:]}")
        a.event("installed")

    def cleanup(self, a: Agent) -> None:
        pass


class AgentRunning:
    """The service is active, has not restarted, and its process has lived for AGENT_STABLE seconds:
    a Type=simple unit is "active" the moment its process starts, even one that crashes at once."""

    name = "agent running"
    query = ("systemctl show -p ActiveState -p NRestarts -p ExecMainStartTimestampMonotonic openclaw-agent; "
             "cut -d' ' -f1 /proc/uptime")

    def run(self, a: Agent) -> None:
        grace = time.monotonic() + AGENT_START_GRACE
        while True:
            a.check("the openclaw-agent service")
            _, out = a.sh(self.query)
            *props, uptime = out.splitlines()
            p = dict(line.split("=", 1) for line in props if "=" in line)
            age = float(uptime) - int(p.get("ExecMainStartTimestampMonotonic") or 0) / 1e6
            state, restarts = p.get("ActiveState", ""), int(p.get("NRestarts") or 0)
            if state == "active" and restarts == 0 and age >= AGENT_STABLE:
                break
            if restarts or state == "failed" or time.monotonic() > grace:
                _, log = a.sh("systemctl status --no-pager openclaw-agent; journalctl -u openclaw-agent -n 20 "
                              "--no-pager")
                why = f"restarted {restarts} time(s)" if restarts else f"{state or 'unknown'}, not active"
                raise RuntimeError(f"openclaw-agent is {why}:\n{log[-1500:]}")
            time.sleep(min(0.3, max(0.05, AGENT_STABLE - age)) if state == "active" else 0.3)
        if a.fleet.ssh_key is not None:  # the run's key leaves the host: only the operator's keys stay
            body = a.fleet.keypair.public_openssh.split()[1]
            a.sh(f"sed -i '\\|{body}|d' /root/.ssh/authorized_keys")
        a.event("ready")

    def cleanup(self, a: Agent) -> None:
        pass


def provision_agent(f: Fleet, agent: str) -> dict:
    a = Agent(fleet=f, agent_id=agent, name=agentid.server_name(agent))
    steps = [AuthKey(), CreateServer()]
    if f.options.wait:
        steps += [Boot(), WaitSSH(), CloudInit()] + ([FullInstall()] if f.mode == "fallback" else []) + [
            AgentRunning()]
    result = {"agent_id": agent, "name": a.name, "mode": f.mode, "image": f.image.id, "server_id": None,
              "ipv4": None, "status": "failed", "seconds_to_ready": None, "error": None}
    try:
        cloudapi.run_steps(f.client, steps, a)
        result["status"] = "ready" if f.options.wait else "created"
        if f.options.wait:
            result["seconds_to_ready"] = a.events["ready"]
    except StepFailed as exc:
        result["error"] = str(exc)
        f.progress(f"[{a.name}] failed: {exc}")
    result.update(server_id=a.server.id if a.server and not a.failed else None, ipv4=a.ip if not a.failed else None,
                  events=a.events)
    return result



def provision(target: Target, options: ProvisionOptions, progress) -> dict:
    """Provision every agent of ``options``; the result lists each with its outcome."""
    client = cloudapi.connect(target)
    f = Fleet(target=target, client=client, options=options, progress=progress)
    before = cloudapi.api_requests(target)
    t0 = time.monotonic()
    steps = [CheckInputs()]
    if options.wait:
        steps.append(ProvisionKey())
    steps += [ProfileFirewall(), Agents()]
    progress(f"provision {f.deployment}: {len(options.agent_ids)} agent(s), profile {options.profile}, "
             f"mode {options.mode}, on the {target.describe()}")
    cloudapi.run_steps(client, steps, f, lambda line: progress(line) if not line.startswith("    ") else None)
    after = cloudapi.api_requests(target)
    return {"deployment": f.deployment, "mode": f.mode, "image": f.image.id, "agents": f.agents,
            "seconds": round(time.monotonic() - t0, 2),
            "api_requests": after - before if before is not None and after is not None else None}


def render_user_data(agent_id: str, *, mode: str = "snapshot", local: bool, api: str | None = None,
                     tailscale: bool = True, agent_bundle: Path | None = None) -> str:
    """The user data ``provision`` would send for ``agent_id``, with the auth key masked; creates nothing."""
    if mode not in ("snapshot", "fallback"):
        raise ValueError(f"--mode {mode!r}: choose snapshot or fallback")
    cfg = userdata.AgentConfig(
        agent_id=agent_id, server_name=agentid.server_name(agent_id), api_url=api_url(api, local), mode=mode,
        deployment="<deployment id>", image="<image id>", tags=tailnet.tags() if tailscale else (),
        auth_key=userdata.MASK if tailscale else None, standin_apt_source=STANDIN_APT_SOURCE if local else None)
    text = userdata.render(cfg, userdata.bundle(agent_bundle))
    userdata.check_size(text, agent_id)
    return text
