"""SSH to cloud servers: one place for keys, pinned host keys (``hostkey``), timeouts and waiting until sshd
answers. Every connection says which host key it accepts: a server's pin, or None only where the operator chose
to trust an unpinned server's key once (``--trust-unpinned``) or a test reaches a bare server of its own."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

import paramiko

from ..errors import HostError
from .hostkey import HostKeyMismatch, Pin, PinnedPolicy
from .keys import KeyPair

if TYPE_CHECKING:
    from fabric import Connection

# paramiko logs every refused connection while a server boots; waiting is our job, not noise.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class SSHTimeout(HostError, TimeoutError):
    pass


def policy(pin: Pin | None) -> paramiko.MissingHostKeyPolicy:
    """The pinned key only; without a pin, whatever key answers (for this connection only)."""
    return PinnedPolicy(pin) if pin is not None else paramiko.AutoAddPolicy()


def connect(host: str, key: KeyPair, *, pin: Pin | None, user: str = "root", timeout: float = 10,
            connect_timeout: float | None = None) -> paramiko.SSHClient:
    """Log in with ``key`` to the host that shows ``pin``'s host key (HostKeyMismatch for any other). While a
    server boots its address may not answer ARP yet, and a TCP connect then takes ~3 s to fail: waiters pass a
    short ``connect_timeout`` and try again."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(policy(pin))
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh))
    try:
        client.connect(host, username=user, pkey=pkey, timeout=connect_timeout or timeout, banner_timeout=timeout,
                       auth_timeout=timeout, allow_agent=False, look_for_keys=False)
    except BaseException:
        # An unclosed half-open session counts against sshd's MaxStartups until LoginGraceTime:
        # a few of those while a server boots and sshd starts refusing everyone.
        client.close()
        raise
    return client


def wait_for_ssh(host: str, key: KeyPair, *, pin: Pin | None, deadline: float,
                 check: Callable[[], None] = lambda: None, interval: float = 0.1) -> paramiko.SSHClient:
    """Connect as soon as sshd accepts our key; SSHTimeout at ``deadline`` (time.monotonic()). ``check`` runs
    before every attempt and may raise to stop waiting (a cancel). Another host key than the pinned one is not
    waited out: cloud-init writes the key before sshd starts, so it is an error at once."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        check()
        try:
            return connect(host, key, pin=pin, timeout=min(10, max(1, deadline - time.monotonic())),
                           connect_timeout=1)
        except HostKeyMismatch:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            last = exc
            time.sleep(interval)
    raise SSHTimeout(f"SSH to {host} did not work in the time allowed (last error: {last}): raise the timeout, "
                     "or look at the server's console log")


def run(client: paramiko.SSHClient, command: str, *, timeout: float = 600,
        stdin: bytes | Iterable[bytes] | None = None) -> tuple[int, str, str]:
    """``stdin`` goes over the channel: how secrets reach a host (never on a command line, which ``ps`` shows), and
    agent bundles, streamed a chunk at a time when given as chunks."""
    channel_in, stdout, stderr = client.exec_command(command, timeout=timeout)
    _send(channel_in.channel, stdin)
    out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err


def _send(channel: paramiko.Channel, stdin: bytes | Iterable[bytes] | None) -> None:
    """``stdin`` to the command, then its end; a command that ended before reading all of it is left to say why
    (its exit status and output), while an error reading ``stdin`` here is raised."""
    for chunk in [stdin] if isinstance(stdin, bytes) else stdin or ():
        try:
            channel.sendall(chunk)
        except OSError:
            return
    channel.shutdown_write()


def must(client: paramiko.SSHClient, command: str, what: str, *, stdin: bytes | Iterable[bytes] | None = None,
         timeout: float = 300, tail: int = 1500) -> str:
    """``run``, and a HostError naming ``what``, the exit code and the output's last ``tail`` characters on failure."""
    code, out, err = run(client, command, timeout=timeout, stdin=stdin)
    if code != 0:
        raise HostError(f"{what} failed (exit {code}): {(out + err).strip()[-tail:]}")
    return out


def fabric_connection(host: str, key: KeyPair, *, pin: Pin | None, user: str = "root") -> Connection:
    """A Fabric Connection for playbooks: our key only, no agent, no ~/.ssh lookups, the pinned host key only."""
    from fabric import Connection

    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh))
    conn = Connection(host, user=user, connect_timeout=10,
                      connect_kwargs={"pkey": pkey, "allow_agent": False, "look_for_keys": False})
    client = cast(paramiko.SSHClient, conn.client)  # fabric declares it None at class level; __init__ made it
    client.set_missing_host_key_policy(policy(pin))
    return conn
