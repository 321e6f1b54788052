"""What moves from an agent's old host to the new one, over SSH with the operator's key: its code, AGENT_ID,
API_URL and secrets (in memory only), and, for an in-place rebuild, the SSH keys the host had. Each step holds
its agent's ``Move``; the pipeline's state is the replacement's provisioning job (provision.agent.Agent)."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime

from hcloud.servers import BoundServer

from ... import agentbundle, agentid, secretfile, tailnet
from ...agentconf import CONFIGURE, check_api_url, stage_code
from ...cloud.servers import address, delete
from ...errors import HostError, InputError
from ...host import hostkey, probe, ssh
from ...provision.agent import Agent
from .plan import Move

SSH_TIMEOUT = 15


class CarryFromOldHost:
    name = "read old host"

    def __init__(self, move: Move):
        self.move = move

    def run(self, a: Agent) -> None:
        m, profile = self.move, a.plan.profile
        ip = address(m.base)
        if ip is None:  # SSH to no address would reach this machine itself
            raise HostError(f"the agent's host {m.base.id} has no address to reach it on")
        assert a.keypair is not None, "a roll holds the operator's key (run.prepare)"
        try:
            conn = ssh.connect(ip, a.keypair, pin=hostkey.pin_or_trust(m.base, m.trust_unpinned), timeout=SSH_TIMEOUT,
                               connect_timeout=SSH_TIMEOUT)
        except hostkey.Unpinned:  # said as it is: the way out is in the message
            raise
        except Exception as exc:  # the old host is untouched; it is its own problem to fix first
            raise HostError(f"SSH to the agent's host {ip} failed: {exc or type(exc).__name__}") from None
        try:
            # The running agent's code, packed on its host: it travels over SSH (it may not fit in user data).
            code, packed = probe.sh(conn, f"tar -C {profile.code_dir} -czf - . | base64 -w0", timeout=120)
            if code != 0:
                raise HostError(f"packing the agent's code on {ip} failed (exit {code}): {packed[-300:]}")
            m.code = base64.b64decode(packed)
            code, env = probe.sh(conn, f"cat {profile.env_file}")
            if code != 0:
                raise HostError(f"{profile.env_file} is missing on {ip}: is this a configured agent host?")
            values = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
            m.secrets_env = secretfile.read(conn, profile.secrets_file)
            if m.in_place:
                m.authorized_keys = probe.sh(conn, "cat /root/.ssh/authorized_keys")[1]
        finally:
            conn.close()
        carried = values.get("AGENT_ID", m.name)
        a.agent_id = carried if _names(carried, m.name) else m.name
        a.plan = replace(a.plan, api_url=check_api_url(values.get("API_URL", "")))


def _names(agent: str, name: str) -> bool:
    try:
        return agentid.server_name(agent) == name
    except InputError:
        return False


class ConfigureCarried:
    """The old host's secrets and code on the replacement, then the agent's start (its user data staged the rest)."""

    name = "configure agent"

    def __init__(self, move: Move):
        self.move = move

    def run(self, a: Agent) -> None:
        m, profile = self.move, a.plan.profile
        assert a.conn is not None, "ConfigureCarried follows WaitSSH"
        if m.authorized_keys is not None:  # only the keys the host had, not its creation's temporary key
            ssh.must(a.conn, "umask 077 && cat > /root/.ssh/authorized_keys.new && "
                             "mv /root/.ssh/authorized_keys.new /root/.ssh/authorized_keys",
                     "restoring the host's SSH keys", stdin=m.authorized_keys.encode())
        if m.secrets_env is not None:
            secretfile.write(a.conn, profile.secrets_file, m.secrets_env, owner=profile.user)
        stage_code(a.conn, agentbundle.in_memory(m.code, f"the code of {m.name}"), str(a.ip))
        ssh.must(a.conn, CONFIGURE, "configuring the agent")
        a.event("configured", "code and secrets carried over" if m.secrets_env else "code carried over")


class DiscardStale:
    """A replacement left by a roll that died before it was ready (or made for another snapshot) goes first."""

    name = "discard stale replacement"

    def __init__(self, stale: BoundServer):
        self.stale = stale

    def run(self, a: Agent) -> None:
        a.progress(f"[{a.resource_name}] deleting the replacement {self.stale.id} an earlier roll left")
        delete(a.client, self.stale, f"deleting the stale replacement {self.stale.id}")
        tailnet.remove_devices(a.plan.target, [self.stale], a.progress, a.plan.tailnet)


def drop_nodes(a: Agent, name: str, since: datetime, until: datetime | None) -> None:
    """The old host's Tailscale nodes: the agent's hostname, enrolled between ``since`` and ``until``."""
    tn = a.plan.tailnet
    if tn is None:
        return
    try:
        for device in tn.devices_of(name, since, until=until):
            tn.delete_device(device["id"])
    except tailnet.TailnetError as exc:
        a.progress(f"[{name}] the old host's Tailscale node was not removed ({exc}); it is ephemeral and goes "
                   "away once offline")
