"""The one way imagekit makes a server, as two steps every command shares. ``CreateServer`` makes the job's
``spec`` (the first location with capacity; a retried create adopts the server its first try made) with an SSH
host key of its own (pinned: the job connects to nothing else) and, unless the job says otherwise, a lease its
run renews while it works on the server; it records the server before any wait, so that a failed wait is still
cleaned up; its cleanup deletes the server unless the job keeps it (an agent, a pool host that got ready; a
server kept for debugging, with a working ``ssh`` line). ``Boot`` waits for the action that brings the server up
(through the run's ``ActionWatcher`` when there is one), then knows its address."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from hcloud import APIException, Client
from hcloud.actions import BoundAction
from hcloud.locations import BoundLocation
from hcloud.servers import BoundServer

from ..cloud import actions, api, leases
from ..cloud.servers import address, delete
from ..cloud.spec import ServerSpec
from ..errors import CloudError, InputError
from ..host import hostkey
from ..leftovers import removing
from .job import HostJob


class CreateServer:
    def __init__(self, what: str = "server", name: str | None = None):
        self.what = what  # how progress lines and errors call the server: "builder server", "job server"
        self.name = name or what

    def run(self, s: HostJob) -> None:
        s.check("the create")
        assert s.spec is not None, "CreateServer needs the job's spec"
        spec = dataclasses.replace(s.spec, ssh_keys=(*s.spec.ssh_keys, *([s.ssh_key] if s.ssh_key else [])),
                                   host_key=hostkey.new(),
                                   labels={**s.spec.labels, **(leases.label() if s.leased else {})})
        if not spec.ssh_keys:  # checked with the inputs; a server without a key would get a root password
            raise InputError("no SSH key for the server: set HETZNER_SSH_KEY_ID")
        s.server, s.action = create(s.client, s.resource_name, spec,
                                    failover=lambda full, following: s.unavailable(full, following, self.what))
        if s.leased:
            leases.hold(s.server)
        s.pin = hostkey.pin(s.server)
        s.ip = address(s.server)  # in the create's answer; else known once it booted
        where = f" in {s.server.location.name}" if s.server.location else ""
        s.event("created", f"server {s.server.id}{where}, {s.ip}, image {spec.image.id}")

    def cleanup(self, s: HostJob) -> None:
        if s.server is None or s.committed:
            return
        if s.keep():
            leases.release(s.server)  # swept by gc once its lease ends, unless deleted by hand first
            how = f"ssh -i {s.key_file} root@{s.ip}" if s.key_file else f"ssh root@{s.ip}"
            s.progress(f"keeping {self.what} {s.server.id} for debugging: {how} "
                       "(delete it with `invoke gc` when done)")
        elif s.discard():
            remove(s, self.what)


class MadeServer(Protocol):
    """A job whose server is made (or taken over): what ``remove`` deletes."""

    @property
    def client(self) -> Client: ...

    @property
    def server(self) -> BoundServer | None: ...

    def event(self, what: str, detail: str = "") -> None: ...


def remove(s: MadeServer, what: str) -> None:
    """The job's server deleted (a failed deletion is a leftover, with the command that removes it)."""
    assert s.server is not None, "remove() follows the step that made the server"
    server = leases.release(s.server)
    with removing("server", server.id, server.name, f"hcloud server delete {server.id}", server.labels):
        delete(s.client, server, f"deleting {what} {server.id}")
    s.event("deleted", f"{what} {server.id}")


class Boot:
    name = "boot"

    def __init__(self, what: str = "server"):
        self.what = what

    def run(self, s: HostJob) -> None:
        assert s.server is not None and s.action is not None, "Boot follows the step that made the server"
        what = f"creating {self.what} {s.server.id}"
        if s.watcher is not None:
            s.watcher.wait(s.action.id, what, lambda: s.check("the create action"))
        else:
            actions.wait(s.client, s.action, s.remaining(), what, check=s.check)
        if s.ip is None:
            s.server.reload()
            s.ip = address(s.server)
        s.event("booting")


def create(client: Client, name: str, spec: ServerSpec,
           failover: Callable[[str, str], None] = lambda unavailable, following: None
           ) -> tuple[BoundServer, BoundAction]:
    """A new server of ``spec`` and its create action, in the first of its locations with capacity: on
    ``resource_unavailable`` the next is tried (``failover(unavailable, following)`` hears of it), and with
    more than one to try the server's ``location`` label records where it landed (snapshots are global, so
    any location boots them)."""
    tried = spec.locations
    for location, following in zip(tried, [*tried[1:], None], strict=True):
        labels = {**spec.server_labels, **({"location": _name(location)} if len(tried) > 1 else {})}
        try:
            return _create(client, name, labels, spec.create_arguments(location))
        except APIException as exc:
            if exc.code != "resource_unavailable" or following is None:
                raise
            failover(_name(location), _name(following))
    raise AssertionError("a spec has at least one location (None: the API's choice)")


def _name(location: BoundLocation | None) -> str:
    """The name of a location to try: with more than one, each is a location (None, the API's choice, is alone)."""
    assert location is not None, "None (the API's choice) is a spec's only location"
    return api.known(location.name, "a location's name")


def _create(client: Client, name: str, labels: dict[str, str], args: dict[str, Any]
            ) -> tuple[BoundServer, BoundAction]:
    """A create the SDK sent again after a lost answer (a timeout, a 502/504) meets the server its first try
    made (uniqueness_error on the name): that one is adopted when it carries every label asked for, so it is
    not orphaned; a server of anyone else is an error."""
    try:
        resp = client.servers.create(name=name, labels=labels, **args)
        return resp.server, resp.action
    except APIException as exc:
        if exc.code != "uniqueness_error":
            raise
    server = client.servers.get_by_name(name)
    if server is None or not labels.items() <= (server.labels or {}).items():
        raise CloudError(f"a server named '{name}' exists already and this run did not make it (it lacks the "
                         f"labels {api.selector(**labels)}): delete or rename it, or choose another name")
    made = [a for a in client.servers.get_actions(server) if a.command == "create_server"]
    if not made:
        raise CloudError(f"server {server.id} ({name}) was made by this run's retried create, but its create "
                         "action is gone: delete it and run again")
    return server, made[-1]
