"""One agent's pipeline, run in a worker thread: [an abandoned server replaced] → Tailscale auth key → user data →
server (labelled half-made) → boot → SSH → cloud-init → enrolled → [fallback: playbooks] → [code, secrets and
configuration over SSH: fallback, code too large for the user data, or --secrets-file] → agent running → marked
ready. A warm pool host, when one is claimed, takes the place of the server's creation and boot."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from .. import agentconf, agentid, secretfile, tailnet
from .. import events as live
from ..errors import HostError
from ..host import probe
from ..leftovers import removing
from ..pipeline import Step, StepFailed, run_steps
from ..pool import claim
from ..steps.install import install_profile
from ..steps.job import HostJob
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import Boot, CreateServer
from . import halfmade, userdata
from .plan import ProvisionPlan
from .state import AgentResult, Run

AGENT_START_GRACE = 60
AGENT_STABLE = 0.5  # seconds the agent's process must have lived to count as running


@dataclass(kw_only=True)
class Agent(HostJob):
    """One agent's job: its plan (shared by the run's agents, or a roll's replacement's own), its milestones."""

    plan: ProvisionPlan
    agent_id: str
    stream: live.Events = field(default_factory=live.Events)
    outlives: bool = True  # the agent's server is what provisioning delivers
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    events: dict[str, float] = field(default_factory=dict)
    reservation: claim.Reservation | None = None  # the warm pool host this agent claims

    def event(self, what: str, detail: str = "") -> None:
        self.events[what] = round(time.monotonic() - self.started, 2)
        self.progress(f"[{self.resource_name}] {what}{': ' + detail if detail else ''} ({self.events[what]:.1f} s)")
        self.stream.emit(what, agent=self.agent_id, detail=detail or None)

    def unavailable(self, full: str, following: str, what: str) -> None:
        self.event("location unavailable", f"{full} has no capacity: trying {following}")


class AuthKey:
    name = "tailscale auth key"

    def run(self, a: Agent) -> None:
        if a.plan.tailnet is not None:
            a.key_id, a.secret = a.plan.tailnet.mint_auth_key(f"imagekit {a.resource_name} {a.plan.deployment}")

    def cleanup(self, a: Agent) -> None:
        tn = a.plan.tailnet
        if tn is None:
            return
        # Single-use and used by now: revoked so the copy in the user data is worthless. Without
        # --wait nobody knows when the host used it; it then simply expires (tailnet.KEY_EXPIRY).
        if a.key_id and (a.failed or a.plan.options.wait):
            with removing("Tailscale auth key", a.key_id, a.resource_name, tailnet.REVOKE_BY_HAND):
                tn.revoke_key(a.key_id)
        if a.discard() and a.server is not None:  # no server of this run, no device of this run
            with removing("Tailscale devices of", a.server.id, a.server.name, tailnet.REMOVE_BY_HAND):
                tn.remove_devices_of(a.server)


class UserData:
    """The agent's cloud-init user data, with its single-use auth key, in its server's spec."""

    name = "user data"

    def run(self, a: Agent) -> None:
        assert a.spec is not None
        p = a.plan
        a.spec = replace(a.spec, user_data=userdata.render(p.config(a.agent_id, a.secret), p.inline_code(),
                                                           p.code_baked))


class Enrolled:
    name = "tailscale"

    def run(self, a: Agent) -> None:
        if a.plan.tailnet is None:
            return
        assert a.conn is not None, "Enrolled follows WaitSSH"
        running, status = probe.tailscale_running(a.conn)
        if not running:
            raise HostError(f"Tailscale did not enrol on {a.ip}: {status}")
        a.event("enrolled", ",".join(a.plan.tags))


class FullInstall:
    """Fallback only: the snapshot build's playbooks; the agent's configuration follows over SSH."""

    name = "playbooks"

    def run(self, a: Agent) -> None:
        p = a.plan
        assert a.ip is not None and a.keypair is not None, "FullInstall follows WaitSSH"
        install_profile(a.ip, a.keypair, a.pin, p.profile.name, p.options.base_image, p.target.local,
                        f"fallback-{p.deployment}", lambda line: a.progress(f"[{a.resource_name}] {line}"),
                        ipv4=p.options.ipv4)
        a.event("installed")


class ConfigureOverSSH:
    """The agent's code when it did not fit in the user data (streamed over the SSH channel the run waited on,
    checked on the host), its secrets (into a file only the agent's user reads, loaded by its unit), then the
    agent's configuration and start: on fallback hosts, and on snapshot hosts that wait for their code or
    secrets (their cloud-init stages the rest of the agent but does not start it)."""

    name = "configure agent"

    def run(self, a: Agent) -> None:
        p = a.plan
        if p.mode != "fallback" and not p.over_ssh:
            return
        assert a.conn is not None, "ConfigureOverSSH follows WaitSSH"
        if p.stage_code:
            assert p.bundle is not None, "a plan that stages code has a bundle"
            took = agentconf.stage_code(a.conn, p.bundle, str(a.ip))
            a.event("code staged", f"{p.bundle.size / 1e6:.1f} MB in {took:.1f} s")
        if p.secrets:
            secretfile.install(a.conn, p.profile.secrets_file, p.secrets, owner=p.profile.user)
        code, out = probe.sh(a.conn, agentconf.CONFIGURE, timeout=300)
        if code != 0:
            raise HostError(f"configuring the agent failed (exit {code}): {out[-1500:]}")
        a.event("configured", "secrets installed" if p.secrets else "")


class AgentRunning:
    """The service is active, has not restarted, and its process has lived for AGENT_STABLE seconds."""

    name = "agent running"

    def run(self, a: Agent) -> None:
        service = a.plan.profile.service
        assert a.conn is not None, "AgentRunning follows WaitSSH (or a claim)"
        probe.wait_running(a.conn, service, grace=AGENT_START_GRACE, stable=AGENT_STABLE,
                           check=lambda: a.check(f"the {service} service"))
        if a.ssh_key is not None or (a.spec is not None and a.spec.login_key):  # the run's key leaves the host:
            # only the operator's keys stay
            assert a.keypair is not None, "the run's key is the job's key pair"
            body = a.keypair.public_openssh.split()[1]
            probe.sh(a.conn, f"sed -i '\\|{body}|d' /root/.ssh/authorized_keys")


def provision_agent(r: Run, agent_id: str) -> AgentResult:
    p = r.plan
    name = agentid.server_name(agent_id)
    # Leased (half-made) until ready when provision waits; without waiting nobody would end the lease.
    a = Agent(client=p.client, progress=r.progress, resource_name=name, timeout=p.timeout(), cancel=r.cancel,
              watcher=r.watcher, keypair=r.keypair, ssh_key=r.ssh_key, plan=p, agent_id=agent_id, stream=r.events,
              leased=p.options.wait,
              spec=replace(p.spec, labels=p.agent_labels(name), firewalls=(r.firewall,) if r.firewall else (),
                           login_key=r.login_key))
    if r.pool is not None and p.mode == "snapshot" and not r.replace.get(name):
        assert r.keypair is not None, "a run with a pool holds the operator's key (find_pool)"
        a.reservation = claim.reserve(r.pool, r.keypair, claim.token(p.deployment, agent_id),
                                      lambda line: r.progress(f"[{name}] {line}"))
    steps: list[Step[Agent]]
    if a.reservation is not None:  # a warm host: configured over SSH, no server to create or boot
        steps = [AuthKey(), claim.TakePoolHost(), claim.ConfigureClaimed(), AgentRunning(), halfmade.MarkReady()]
    else:
        old = r.replace.get(name)
        steps = [*([halfmade.ReplaceAbandoned(old)] if old else []), AuthKey(), UserData(),
                 CreateServer(name="create server")]
        if p.options.wait:
            steps += [Boot(), WaitSSH(), WaitCloudInit(), Enrolled()]
            steps += [FullInstall()] if p.mode == "fallback" else []
            steps += [ConfigureOverSSH(), AgentRunning(), halfmade.MarkReady()]
    mode = "pool" if a.reservation is not None else p.mode
    result: AgentResult = {"agent_id": agent_id, "name": name, "mode": mode, "image": p.image.id, "server_id": None,
                           "ipv4": None, "status": "failed", "seconds_to_ready": None, "error": None}
    try:
        run_steps(steps, a, lambda line: None, r.events.step_reporter(agent_id))
        result["status"] = "ready" if p.options.wait else "created"
        if p.options.wait:
            result["seconds_to_ready"] = a.events["ready"]
    except StepFailed as exc:
        result["error"] = str(exc)
        r.progress(f"[{name}] failed: {exc}")
        r.events.emit("failed", agent=agent_id, detail=str(exc))
    kept = a.server is not None and not a.failed
    result["server_id"] = a.server.id if a.server is not None and kept else None
    result["ipv4"] = a.ip if kept else None
    result["events"] = a.events
    return result
