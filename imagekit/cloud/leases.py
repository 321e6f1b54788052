"""Leases: everything ``gc`` may sweep (builders, verify clones, temporary keys, half-made agents, pool hosts being
made, jobs, round trip and bench servers) carries ``lease-until=<unix time>`` from its creation, and the run that
made it renews the lease while it works on it: every interval (IMAGEKIT_LEASE_INTERVAL, a minute by default) to
AHEAD intervals ahead, from a thread of its own, so that no run needs a timeout of its own to stay safe from gc.
``gc`` sweeps only what a lease no longer covers (the run died, or was killed), with ``--older-than`` as a grace
on top; a resource that ends its run's work (a ready agent, a ready pool host) has the label taken off.

Renewals cost API requests (Hetzner allows 3600 an hour per project): the lease is set in the create's own labels,
and only what lives longer than an interval is ever renewed (a snapshot agent is ready in seconds). What a run
changes on a leased resource's labels itself goes through ``release`` first, so a renewal never writes back
labels the run has just changed."""

from __future__ import annotations

import threading
import time
from typing import TypeVar

import requests
from hcloud import APIException
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from .. import settings

KEY = "lease-until"
AHEAD = 5  # intervals a lease reaches ahead: a run may miss four renewals in a row (an API hiccup) and keep it

Leased = TypeVar("Leased", BoundServer, BoundSSHKey)
Labelled = BoundServer | BoundSSHKey


def label(now: float | None = None) -> dict[str, str]:
    """A fresh lease, for a create's labels."""
    return {KEY: str(int((time.time() if now is None else now) + AHEAD * settings.lease_interval()))}


def until(resource: Labelled) -> float | None:
    """When the lease ends; None without one (0 when the label is garbled: ended)."""
    value = (resource.labels or {}).get(KEY)
    if value is None:
        return None
    return float(value) if value.isdigit() else 0.0


def expired(resource: Labelled, grace: float = 0.0, now: float | None = None) -> bool:
    """Its lease has ended (``grace`` seconds ago): the run that made it is gone."""
    ends = until(resource)
    return ends is not None and (time.time() if now is None else now) > ends + grace


def live(resource: Labelled) -> bool:
    """A run is at work on it (it holds a lease that has not ended)."""
    return until(resource) is not None and not expired(resource)


class Renewer:
    """The process's renewals: the resources its runs hold, each renewed once its lease has less than AHEAD - 1
    intervals left. The thread runs while anything is held."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[tuple[str, int], Labelled] = {}
        self.thread: threading.Thread | None = None

    def hold(self, resource: Leased) -> Leased:
        with self.lock:
            self.held[_key(resource)] = resource
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self.thread.start()
        return resource

    def release(self, resource: Leased) -> Leased:
        """No more renewals; the resource as last renewed (its labels current), to change them from."""
        with self.lock:
            found = self.held.pop(_key(resource), resource)
        assert isinstance(found, type(resource))
        return found

    def _run(self) -> None:
        last = time.monotonic()
        while True:  # a second at a time: an interval changed meanwhile (a setting read anew) applies at once
            time.sleep(min(1.0, settings.lease_interval()))
            if time.monotonic() - last < settings.lease_interval():
                continue
            last = time.monotonic()
            with self.lock:
                if not self.held:
                    self.thread = None
                    return
                for key, resource in list(self.held.items()):
                    self._renew(key, resource)

    def _renew(self, key: tuple[str, int], resource: Labelled) -> None:
        ends, interval = until(resource), settings.lease_interval()
        if ends is not None and ends - time.time() > (AHEAD - 1) * interval:
            return
        try:
            self.held[key] = resource.update(labels={**(resource.labels or {}), **label()})
        except APIException as exc:
            if exc.code == "not_found":  # deleted meanwhile (by its run's cleanup or by hand): nothing to renew
                del self.held[key]
        except requests.RequestException:  # the next interval tries again; the lease reaches AHEAD intervals
            pass


def _key(resource: Labelled) -> tuple[str, int]:
    assert resource.id is not None, "a resource the API made has an id"
    return type(resource).__name__, resource.id


RENEWER = Renewer()
hold = RENEWER.hold
release = RENEWER.release


def end(server: BoundServer) -> BoundServer:
    """The run's work on ``server`` is done (a ready agent or pool host): no more renewals, the label off."""
    current = release(server)
    return current.update(labels={k: v for k, v in (current.labels or {}).items() if k != KEY})
