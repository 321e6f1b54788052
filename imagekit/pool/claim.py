"""Claiming a pool host for one agent: reserve it on the host, take it over in the API, configure it over SSH.

Reserve: the Hetzner API has no compare-and-set, so the lock lives on the host itself: under ``flock`` a claim file
is written only when none is there (or the one there is past its deadline, its run died). Two runs racing for one
host: exactly one writes it; the other moves on to the next host, or creates its agent cold. ``pool fill``, ``pool
drain`` and ``gc`` reserve a host the same way before they delete it (pool/sweep.py). Take: one update
renames the host to the agent's server name and gives it the agent's labels (half-made until ready); names are
unique in a project, so two runs provisioning the same agent cannot both take a host. Configure: the agent's
identity, code and configure script (what the user data stages on a cold host), its secrets, a fresh single-use
Tailscale key (enrolled before the agent starts) and the start, over the SSH connection the reservation opened."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import paramiko
from hcloud import APIException, Client
from hcloud.images import BoundImage
from hcloud.servers import BoundServer

from .. import secretfile, tailnet
from ..agentbundle import Bundle
from ..agentconf import CONFIGURE, STAGE, AgentConfig, stage_archive, stage_code
from ..cloud import leases
from ..cloud.api import known
from ..cloud.servers import address
from ..cloud.spec import ServerSpec
from ..errors import CloudError, HostError
from ..host import hostkey, ssh
from ..host.keys import KeyPair
from ..profiles import Profile
from ..steps.server import remove

CLAIM_SECONDS = 120  # a reservation not taken over by then is free again (its run died before the rename)
CLAIM_FILE = "/run/imagekit/pool-claim"
HOSTNAME_CFG = "/etc/cloud/cloud.cfg.d/99-imagekit-hostname.cfg"


@dataclass
class Candidates:
    """A run's claimable hosts, handed out once each to its agents' workers (random order, so concurrent runs
    rarely try the same host first)."""

    hosts: list[BoundServer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        random.shuffle(self.hosts)

    def next(self) -> BoundServer | None:
        with self.lock:
            return self.hosts.pop() if self.hosts else None


@dataclass
class Reservation:
    server: BoundServer
    conn: paramiko.SSHClient
    token: str
    taken: bool = False

    @property
    def ip(self) -> str | None:
        return address(self.server)

    def release(self) -> None:
        """Back to the pool: the claim file goes, if it is still this reservation's."""
        try:
            ssh.run(self.conn, _release_command(self.token), timeout=30)
        except Exception:  # noqa: BLE001  the claim then lapses at its deadline
            pass


def _lock_command(token: str) -> str:
    return (f"umask 077 && mkdir -p /run/imagekit && exec 9>{CLAIM_FILE}.lock && flock -n 9 || exit 75; "
            f"now=$(date +%s); if [ -s {CLAIM_FILE} ] && [ \"$(cut -d' ' -f1 {CLAIM_FILE})\" -gt \"$now\" ]; "
            f"then exit 75; fi; echo \"$((now + {CLAIM_SECONDS})) {token}\" > {CLAIM_FILE}")


def _release_command(token: str) -> str:
    return f"grep -qx '[0-9]* {token}' {CLAIM_FILE} && rm -f {CLAIM_FILE}"


def reserve(candidates: Candidates, keypair: KeyPair, token: str, progress: Callable[[str], None]
            ) -> Reservation | None:
    """The first candidate whose claim file this run wrote; None when every one is gone or taken."""
    while (server := candidates.next()) is not None:
        if (found := reserve_host(server, keypair, token, progress)) is not None:
            return found
    return None


def reserve_host(server: BoundServer, keypair: KeyPair, token: str, progress: Callable[[str], None]
                 ) -> Reservation | None:
    """The host reserved for ``token`` (its claim file written under its lock), over SSH to its pinned host key;
    None (said on ``progress`` unless another run holds it) when it cannot be."""
    ip = address(server)
    if ip is None:  # SSH to no address would reach this machine itself
        progress(f"pool host {server.name} has no address to reach it on: skipped")
        return None
    try:
        conn = ssh.connect(ip, keypair, pin=hostkey.pin(server), timeout=10, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001  a broken pool host: the next one, and `pool fill` replaces it
        progress(f"pool host {server.name} ({ip}) did not answer SSH ({exc or type(exc).__name__}): skipped")
        return None
    code, _, _ = ssh.run(conn, _lock_command(token), timeout=30)
    if code == 0:
        return Reservation(server, conn, token)
    conn.close()
    if code != 75:
        progress(f"pool host {server.name} ({ip}) could not be reserved (exit {code}): skipped")
    return None


class AgentPlan(Protocol):
    """What a claim reads of the agent's provisioning plan (provision.plan.ProvisionPlan)."""

    @property
    def image(self) -> BoundImage: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def bundle(self) -> Bundle | None: ...

    @property
    def code_baked(self) -> bool: ...

    @property
    def secrets(self) -> secretfile.Secrets: ...

    @property
    def tailnet(self) -> tailnet.Tailnet | None: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    def config(self, agent: str, auth_key: str | None) -> AgentConfig: ...


class Claiming(Protocol):
    """What the claim's steps work on: an agent's job (provision.agent.Agent) holding a reservation."""

    server: BoundServer | None
    ip: str | None
    conn: paramiko.SSHClient | None
    pin: hostkey.Pin | None
    failed: bool
    leased: bool

    @property
    def client(self) -> Client: ...

    @property
    def resource_name(self) -> str: ...

    @property
    def spec(self) -> ServerSpec | None: ...

    @property
    def plan(self) -> AgentPlan: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def secret(self) -> str | None: ...

    @property
    def reservation(self) -> Reservation | None: ...

    def event(self, what: str, detail: str = "") -> None: ...

    def discard(self) -> bool: ...


class TakePoolHost:
    """The reserved host becomes the agent's server: renamed and relabelled in one update."""

    name = "claim pool host"

    def run(self, a: Claiming) -> None:
        res = a.reservation
        assert res is not None and a.spec is not None, "a claim follows its reservation, in the agent's spec"
        pool_name = res.server.name
        held = res.server.labels or {}
        where = {"location": held["location"]} if "location" in held else {}
        lease = leases.label() if a.leased else {}
        pinned = {hostkey.LABEL: held[hostkey.LABEL]}  # its host key stays the one it was made with
        try:
            server = a.client.servers.update(res.server, name=a.resource_name, labels={
                **a.spec.server_labels, **where, **pinned, **lease, "pool": "claimed"})
        except APIException as exc:
            if exc.code == "uniqueness_error":
                raise CloudError(f"a server named '{a.resource_name}' appeared meanwhile (another run provisioned "
                                 "this agent): pool host left in the pool") from None
            raise
        res.taken = True
        a.server, a.ip, a.conn, a.pin = server, res.ip, res.conn, hostkey.pin(server)
        if lease:
            leases.hold(server)
        a.event("claimed", f"pool host {server.id} ({pool_name}), {a.ip}, snapshot {a.plan.image.id}")

    def cleanup(self, a: Claiming) -> None:
        res = a.reservation
        assert res is not None, "a claim follows its reservation"
        if not res.taken:
            res.release()
            res.conn.close()
        elif a.discard():
            remove(a, "server")


def _hostname_command(old: str, new: str) -> str:
    """The agent's name as the host's name, now and after a reboot (cloud-init would set the pool name again)."""
    return (f"hostname {new} && echo {new} > /etc/hostname && sed -i 's/\\b{old}\\b/{new}/g' /etc/hosts && "
            f"printf 'hostname: {new}\\n' > {HOSTNAME_CFG}")


class ConfigureClaimed:
    """What a cold host's user data and cloud-init do, over SSH: stage, secrets, enrol, start."""

    name = "configure agent"

    def run(self, a: Claiming) -> None:
        r = a.plan
        assert a.reservation is not None and a.conn is not None, "configuring follows the claim"
        stage = "; ".join([
            f"set -e; umask 077; rm -rf {STAGE}; mkdir -p {STAGE}; tar -xzf - -C {STAGE} --no-same-owner",
            f"install -m 0755 {STAGE}/imagekit-configure-agent {CONFIGURE}",
            f"rm {STAGE}/imagekit-configure-agent",
            _hostname_command(known(a.reservation.server.name, "the pool host's name"), a.resource_name)])
        cfg = dataclasses.replace(r.config(a.agent_id, None), mode="pool")  # the agent's record says where from
        ssh.must(a.conn, stage, f"staging the agent on {a.ip}", stdin=stage_archive(cfg))
        assert r.bundle is not None, "a claim is provisioning's, whose plan has a bundle"
        if r.code_baked:  # the pool host's snapshot holds this very code: it stays
            ssh.must(a.conn, f"touch {STAGE}/code-baked", f"staging the agent on {a.ip}")
        else:
            stage_code(a.conn, r.bundle, str(a.ip))
        if r.secrets:
            secretfile.install(a.conn, r.profile.secrets_file, r.secrets, owner=r.profile.user)
        if r.tailnet is not None:
            assert a.secret is not None, "an enrolling agent's auth key is minted first (provision.agent.AuthKey)"
            try:
                tailnet.enrol_over_ssh(a.conn, a.secret, a.resource_name, r.tags)
            except tailnet.TailnetError as exc:
                raise HostError(f"on {a.ip}: {exc}") from None
            a.event("enrolled", ",".join(r.tags))
        ssh.must(a.conn, CONFIGURE, f"configuring the agent on {a.ip}")
        a.event("configured", "secrets installed" if r.secrets else "")


def token(deployment: str, agent: str) -> str:
    return f"{deployment}/{agent}/{time.time_ns()}"
