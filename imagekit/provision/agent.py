"""One agent's pipeline, run in a worker thread: [an abandoned server replaced] → Tailscale auth key →
server (labelled half-made) → boot → SSH → cloud-init → enrolled → [fallback: playbooks] → [secrets and
configuration over SSH: fallback, or with --secrets-file] → agent running → marked ready."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import agentid, secretfile
from ..cloud import api
from ..errors import HostError, InputError
from ..host import probe
from ..pipeline import StepFailed, run_steps
from ..pool import claim
from ..steps.install import install_profile
from ..steps.job import HostJob
from ..steps.ready import WaitCloudInit, WaitSSH
from ..steps.server import create, delete
from . import halfmade, userdata

if TYPE_CHECKING:
    from .state import Run

AGENT_START_GRACE = 60
AGENT_STABLE = 0.5  # seconds the agent's process must have lived to count as running


@dataclass
class Agent(HostJob):
    run: Run | None = None
    agent_id: str = ""
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    action_id: int | None = None
    events: dict[str, float] = field(default_factory=dict)
    # The server has taken the agent over from the one a roll deleted: no cleanup may delete it from then on.
    committed: bool = False
    reservation: object | None = None  # pool.claim.Reservation: the warm pool host this agent claims

    @property
    def discard(self) -> bool:
        """Whether cleanups remove what this agent's steps made: it failed before its server took over."""
        return self.failed and not self.committed

    def event(self, what: str, detail: str = "") -> None:
        self.events[what] = round(time.monotonic() - self.started, 2)
        self.progress(f"[{self.resource_name}] {what}{': ' + detail if detail else ''} ({self.events[what]:.1f} s)")
        self.run.events.emit(what, agent=self.agent_id, detail=detail or None)


class AuthKey:
    name = "tailscale auth key"

    def run(self, a: Agent) -> None:
        r = a.run
        if r.tailnet is not None:
            a.key_id, a.secret = r.tailnet.mint_auth_key(f"imagekit {a.resource_name} {r.deployment}")

    def cleanup(self, a: Agent) -> None:
        r = a.run
        if r.tailnet is None:
            return
        # Single-use and used by now: revoked so the copy in the user data is worthless. Without
        # --wait nobody knows when the host used it; it then simply expires (tailnet.KEY_EXPIRY).
        if a.key_id and (a.failed or r.options.wait):
            r.tailnet.revoke_key(a.key_id)
        if a.discard and a.server is not None:  # no server of this run, no device of this run
            r.tailnet.remove_devices_of(a.server)


class CreateAgentServer:
    name = "create server"

    def run(self, a: Agent) -> None:
        r, o = a.run, a.run.options
        a.check("a worker")
        data = userdata.render(r.config(a.agent_id, a.secret), r.bundle)
        keys = [k for k in (r.ssh_key, r.operator_key) if k is not None]
        if not keys:  # checked with the inputs; a server without a key would get a root password
            raise InputError("no SSH key for the server: set HETZNER_SSH_KEY_ID")
        a.server, action = create(
            r.client, a.resource_name, a.labels, server_type=r.server_type, image=r.image, ssh_keys=keys,
            user_data=data, firewalls=[r.firewall] if r.firewall else None, locations=r.locations,
            failover=lambda full, next_: a.event("location unavailable", f"{full} has no capacity: trying {next_}"))
        # a.server is recorded before any wait, so a failed wait is still cleaned up
        a.action_id = action.id
        a.ip = a.server.public_net.ipv4.ip if a.server.public_net and a.server.public_net.ipv4 else None
        where = f" in {a.server.location.name}" if a.server.location else ""
        a.event("created", f"server {a.server.id}{where}, {a.ip}, {r.mode} mode from image {r.image.id} ({o.profile})")

    def cleanup(self, a: Agent) -> None:
        if a.discard and a.server is not None:
            delete(a.client, a.server, f"deleting server {a.server.id}")
            a.progress(f"[{a.resource_name}] server {a.server.id} deleted")


class Boot:
    name = "boot"

    def run(self, a: Agent) -> None:
        a.run.watcher.wait(a.action_id, f"creating server {a.server.id}", lambda: a.check("the create action"))
        if a.ip is None:
            a.server.reload()
            a.ip = a.server.public_net.ipv4.ip
        a.event("booting")

    def cleanup(self, a: Agent) -> None:
        pass


class Enrolled:
    name = "tailscale"

    def run(self, a: Agent) -> None:
        if a.run.tailnet is None:
            return
        running, status = probe.tailscale_running(a.conn)
        if not running:
            raise HostError(f"Tailscale did not enrol on {a.ip}: {status}")
        a.event("enrolled", ",".join(a.run.tags))

    def cleanup(self, a: Agent) -> None:
        pass


class FullInstall:
    """Fallback only: the snapshot build's playbooks; the agent's configuration follows over SSH."""

    name = "playbooks"

    def run(self, a: Agent) -> None:
        r, o = a.run, a.run.options
        install_profile(a.ip, a.keypair, o.profile, o.base_image, r.target.local, f"fallback-{r.deployment}",
                        lambda line: a.progress(f"[{a.resource_name}] {line}"))
        a.event("installed")

    def cleanup(self, a: Agent) -> None:
        pass


class ConfigureOverSSH:
    """The agent's secrets (over the SSH channel, into a file only the agent's user reads, loaded by its
    unit), then the agent's configuration and start: on fallback hosts, and on snapshot hosts that wait
    for their secrets (their cloud-init stages the agent but does not start it)."""

    name = "configure agent"

    def run(self, a: Agent) -> None:
        r = a.run
        if r.secrets:
            secretfile.install(a.conn, r.profile.secrets_file, r.secrets, owner=r.profile.user)
        if r.mode != "fallback" and not r.secrets:
            return
        code, out = probe.sh(a.conn, "/usr/local/sbin/imagekit-configure-agent", timeout=300)
        if code != 0:
            raise HostError(f"configuring the agent failed (exit {code}): {out[-1500:]}")
        a.event("configured", "secrets installed" if r.secrets else "")

    def cleanup(self, a: Agent) -> None:
        pass


class AgentRunning:
    """The service is active, has not restarted, and its process has lived for AGENT_STABLE seconds."""

    name = "agent running"

    def run(self, a: Agent) -> None:
        service = a.run.profile.service
        probe.wait_running(a.conn, service, grace=AGENT_START_GRACE, stable=AGENT_STABLE,
                           check=lambda: a.check(f"the {service} service"))
        if a.run.ssh_key is not None:  # the run's key leaves the host: only the operator's keys stay
            body = a.keypair.public_openssh.split()[1]
            probe.sh(a.conn, f"sed -i '\\|{body}|d' /root/.ssh/authorized_keys")

    def cleanup(self, a: Agent) -> None:
        pass


def provision_agent(r: Run, agent_id: str) -> dict:
    name = agentid.server_name(agent_id)
    # Labelled half-made until ready when provision waits; without waiting nobody would take the label off.
    until = halfmade.label(time.time() + r.timeout()) if r.options.wait else {}
    a = Agent(client=r.client, progress=r.progress, resource_name=name, timeout=r.timeout(), cancel=r.cancel,
              keypair=r.keypair, run=r, agent_id=agent_id,
              labels=api.labels(role="agent", profile=r.options.profile, mode=r.mode, deployment=r.deployment,
                                tailscale="yes" if r.enrols else "no", **{"agent-id": name}, **until))
    if r.pool is not None and r.mode == "snapshot" and not r.replace.get(name):
        a.reservation = claim.reserve(r.pool, r.keypair, claim.token(r.deployment, agent_id),
                                      lambda line: r.progress(f"[{name}] {line}"))
    if a.reservation is not None:  # a warm host: configured over SSH, no server to create or boot
        steps = [AuthKey(), claim.TakePoolHost(), claim.ConfigureClaimed(), AgentRunning(), halfmade.MarkReady()]
    else:
        steps = [halfmade.ReplaceAbandoned(), AuthKey(), CreateAgentServer()]
        if r.options.wait:
            steps += [Boot(), WaitSSH(), WaitCloudInit(), Enrolled()]
            steps += [FullInstall()] if r.mode == "fallback" else []
            steps += [ConfigureOverSSH(), AgentRunning(), halfmade.MarkReady()]
    mode = "pool" if a.reservation is not None else r.mode
    result = {"agent_id": agent_id, "name": name, "mode": mode, "image": r.image.id, "server_id": None,
              "ipv4": None, "status": "failed", "seconds_to_ready": None, "error": None}
    try:
        run_steps(steps, a, lambda line: None, r.events.step_reporter(agent_id))
        result["status"] = "ready" if r.options.wait else "created"
        if r.options.wait:
            result["seconds_to_ready"] = a.events["ready"]
    except StepFailed as exc:
        result["error"] = str(exc)
        r.progress(f"[{name}] failed: {exc}")
        r.events.emit("failed", agent=agent_id, detail=str(exc))
    kept = a.server is not None and not a.failed
    result.update(server_id=a.server.id if kept else None, ipv4=a.ip if kept else None, events=a.events)
    return result
