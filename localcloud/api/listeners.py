"""Who may hold how many connections to the API, and for how long, on each address it listens on.

The API listens on loopback (the operator and this host's clients) and on the bridge (guests: the apt
repository, the Tailscale stand-in). Every connection costs the process a file descriptor, and uvicorn
neither caps connections per address nor times out a connection that never finishes its request head. So
each listening address has a ``Policy`` of its own: at most ``connections`` at once, at most ``per_source``
of them from one peer address, closed after ``idle`` seconds without a request (from the moment they open,
too) and after ``request`` seconds from a request's first byte to its last. A connection over a cap is
accepted and reset (RST) at once: a guest holding thousands of idle connections holds at most ``per_source``
descriptors, and the operator's listener keeps its own budget within the process's file limit.
"""

from __future__ import annotations

import logging
import resource
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("localcloud")

OPERATOR = "127.0.0.1"
KEEP_ALIVE = 620  # seconds; longer than any pause between a client's polls (see server.uvicorn_config)
GUEST_PER_SOURCE = 64  # apt and the stand-in's client need a handful
REPORT_EVERY = 60  # seconds between log lines about refused connections on one listener
# Connections the kernel queues for accept on each listener; asyncio also accepts up to this many in one go,
# so it bounds the descriptors a flood holds for an instant before they are reset (uvicorn's default: 2048).
BACKLOG = 128


@dataclass(frozen=True)
class Policy:
    connections: int
    per_source: int
    idle: float
    request: float


def raise_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the limit now in force."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def policies(guest_addresses: list[str], file_limit: int | None = None) -> dict[str, Policy]:
    """Loopback and each guest-facing address get a quarter of the file limit each at most (the rest is for
    guests' logs, pipes and state); a guest address allows few connections per peer and little patience."""
    limit = file_limit or resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    share = max(16, limit // (4 * max(1, len(guest_addresses))))
    out = {OPERATOR: Policy(connections=limit // 4, per_source=limit // 4, idle=KEEP_ALIVE, request=60)}
    for address in guest_addresses:
        out[address] = Policy(connections=share, per_source=min(GUEST_PER_SOURCE, share), idle=30, request=10)
    return out


class _Tally:
    """Open connections on one listener, in all and per peer address (the event loop's thread only)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.total = 0
        self.by_peer: Counter[str] = Counter()
        self.refused = 0
        self.reported = 0.0

    def admit(self, peer: str) -> bool:
        if self.total >= self.policy.connections or self.by_peer[peer] >= self.policy.per_source:
            self.refused += 1
            return False
        self.total += 1
        self.by_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.total -= 1
        self.by_peer[peer] -= 1
        if not self.by_peer[peer]:
            del self.by_peer[peer]


def protocol(listener_policies: dict[str, Policy]) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol held to ``listener_policies`` (listening address -> Policy)."""
    tallies = {address: _Tally(policy) for address, policy in listener_policies.items()}

    class Guarded(H11Protocol):
        tally: _Tally | None = None
        peer = ""
        request_timer = None

        def connection_made(self, transport) -> None:
            local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
            tally = tallies.get(local[0]) if local else None
            if tally is None or not peer or not tally.admit(peer[0]):
                if tally is not None:
                    _report(tally, local[0])
                # A reset, not a FIN: the peer learns at once, and no orphaned socket lingers in FIN-WAIT.
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                              struct.pack("ii", 1, 0))
                transport.abort()
                return
            self.tally, self.peer = tally, peer[0]
            super().connection_made(transport)
            self.timeout_keep_alive = tally.policy.idle  # type: ignore[assignment]  # uvicorn's loop takes floats
            self.timeout_keep_alive_task = self.loop.call_later(tally.policy.idle, self.timeout_keep_alive_handler)

        def data_received(self, data: bytes) -> None:
            if self.tally is not None and self.request_timer is None and self.conn.their_state is h11.IDLE:
                self.request_timer = self.loop.call_later(self.tally.policy.request, self.transport.abort)
            super().data_received(data)
            if self.request_timer is not None and self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self.request_timer.cancel()
                self.request_timer = None

        def connection_lost(self, exc) -> None:
            if self.tally is None:  # refused in connection_made: uvicorn never saw it
                return
            self.tally.release(self.peer)
            self.tally = None
            if self.request_timer is not None:
                self.request_timer.cancel()
            super().connection_lost(exc)

    return Guarded


def _report(tally: _Tally, address: str) -> None:
    now = time.monotonic()
    if now - tally.reported >= REPORT_EVERY:
        tally.reported = now
        log.warning("listener %s: refused %d connections so far (caps: %d in all, %d per peer; busiest peer now "
                    "%s)", address, tally.refused, tally.policy.connections, tally.policy.per_source,
                    tally.by_peer.most_common(1))
