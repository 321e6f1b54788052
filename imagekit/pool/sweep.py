"""Deleting pool hosts without racing a claim. A listing is stale the moment it is read: a host listed as free may
have been claimed since (it is somebody's agent now). So ``pool fill``, ``pool drain`` and ``gc`` delete a pool host
only after reserving it as a claim does (its claim file written under its lock, over SSH to its pinned host key:
a claim under way or done keeps it) and re-reading its labels (still a pool host, still a reason to delete it).
A running host that cannot be reserved is left alone, and said so; one that does not run cannot be claimed
either, and goes after the re-read alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypedDict

from hcloud import APIException, Client
from hcloud.servers import BoundServer

from ..cloud import api
from ..cloud.servers import delete_many
from ..host import hostkey
from ..host.keys import KeyPair
from . import claim, members


class Spared(TypedDict):
    """A pool host a sweep left alone, and why."""

    server_id: int
    name: str | None
    why: str


Reason = Callable[[BoundServer], str | None]  # why a pool host goes, read on its current labels; None: it stays


def delete_unclaimed(client: Client, hosts: list[BoundServer], keypair: KeyPair | None, why: Reason,
                     progress: Callable[[str], None], purpose: str) -> tuple[list[int], list[Spared]]:
    """Each of ``hosts`` that ``why`` still names a reason to delete once it is reserved and re-read; (the ids
    deleted, the hosts left alone with why)."""
    token = f"{purpose}/{time.time_ns()}"
    doomed: list[BoundServer] = []
    held: list[claim.Reservation] = []
    left: list[Spared] = []

    def spare(server: BoundServer, reason: str) -> None:
        progress(f"pool: {server.name} ({server.id}) left alone: {reason}")
        left.append({"server_id": api.known(server.id, "the server's id"), "name": server.name, "why": reason})

    for listed in hosts:
        reservation = None
        if listed.status == "running":
            if keypair is None:
                spare(listed, "reserving it as a claim does needs your key: set SSH_PRIVATE_KEY_PATH")
                continue
            if hostkey.LABEL not in (listed.labels or {}):
                spare(listed, f"it has no host-key label (made before imagekit pinned host keys), so it cannot be "
                              f"reserved safely: delete it with `hcloud server delete {listed.id}` once no older "
                              "imagekit claims from the pool")
                continue
            reservation = claim.reserve_host(listed, keypair, token, progress)
            if reservation is None:
                spare(listed, "it could not be reserved: a claim holds it (or it did not answer)")
                continue
        current = _reread(client, listed)
        reason = why(current) if current is not None and _still_member(current, listed) else None
        if reason is None:
            if reservation is not None:
                reservation.release()
                reservation.conn.close()
            spare(listed, "it changed since it was listed (claimed, or ready again)")
            continue
        progress(f"pool: deleting {listed.name} ({listed.id}): {reason}")
        assert current is not None
        doomed.append(current)
        held += [reservation] if reservation is not None else []
    try:
        delete_many(client, doomed)
    finally:
        for reservation in held:
            reservation.conn.close()
    return [s.id for s in doomed if s.id is not None], left


def _reread(client: Client, listed: BoundServer) -> BoundServer | None:
    assert listed.id is not None, "a server the API listed has an id"
    try:
        return client.servers.get_by_id(listed.id)
    except APIException as exc:
        if exc.code == "not_found":
            return None
        raise


def _still_member(current: BoundServer, listed: BoundServer) -> bool:
    """Still the pool host that was listed: its role and name unchanged, not being deleted."""
    return (current.labels or {}).get("role") == members.ROLE and current.name == listed.name \
        and current.status != "deleting"
