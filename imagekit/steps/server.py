"""A server for a build, a check or a round trip: created labelled, recorded before any wait,
deleted by its cleanup (or kept, with a working ``ssh`` line, when the operator asked). ``create``
is the one way imagekit makes a server (agents too)."""

from __future__ import annotations

from hcloud import APIException, Client
from hcloud.images import BoundImage
from hcloud.server_types import BoundServerType

from ..cloud import actions, api
from ..errors import CloudError

DELETE_TIMEOUT = 300


class CreateServer:
    """Needs ``server_type``, ``image``, ``locations`` and ``user_data`` on the state besides a HostJob's."""

    def __init__(self, name: str = "server"):
        self.name = name

    def run(self, s) -> None:
        stype: BoundServerType = s.server_type
        image: BoundImage = s.image
        s.server, action = create(
            s.client, s.resource_name, s.labels, server_type=stype, image=image, ssh_keys=[s.ssh_key, *s.extra_keys],
            locations=s.locations, user_data=s.user_data, failover=lambda full, next_: self.failover(s, full, next_))
        # s.server is recorded before any wait, so a failed wait is still cleaned up
        actions.wait(s.client, action, s.remaining(), f"creating {self.name}", check=s.check)
        s.server.reload()
        s.ip = s.server.public_net.ipv4.ip

    def failover(self, s, full: str, next_: str) -> None:
        s.progress(f"{full} has no capacity for the {self.name}: trying {next_}")
        s.event("location unavailable", f"{full} has no capacity: trying {next_}")

    def cleanup(self, s) -> None:
        if s.server is None:
            return
        if s.keep():
            how = f"ssh -i {s.key_file} root@{s.ip}" if s.key_file else f"ssh root@{s.ip}"
            s.progress(f"keeping {self.name} {s.server.id} for debugging: {how} "
                       "(delete it with `invoke gc` when done)")
            return
        delete(s.client, s.server, f"deleting {self.name} {s.server.id}")


def create(client: Client, name: str, labels: dict[str, str], *, locations: list | None = None,
           failover=lambda unavailable, following: None, **spec) -> tuple:
    """A new server and its create action, in the first of ``locations`` with capacity: on
    ``resource_unavailable`` the next is tried (``failover(unavailable, following)`` hears of it), and with
    more than one to try the server's ``location`` label records where it landed (snapshots are global, so
    any location boots them)."""
    tried = locations or [None]
    for location, following in zip(tried, [*tried[1:], None], strict=True):
        where = {"location": location.name} if len(tried) > 1 else {}
        try:
            return _create(client, name, {**labels, **where}, location=location, **spec)
        except APIException as exc:
            if exc.code != "resource_unavailable" or following is None:
                raise
            failover(location.name, following.name)


def _create(client: Client, name: str, labels: dict[str, str], **spec) -> tuple:
    """A create the SDK sent again after a lost answer (a timeout, a 502/504) meets the server its first try
    made (uniqueness_error on the name): that one is adopted when it carries every label asked for, so it is
    not orphaned; a server of anyone else is an error."""
    try:
        resp = client.servers.create(name=name, labels=labels, **spec)
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


def delete(client, server, what: str) -> None:
    actions.wait(client, client.servers.delete(server), DELETE_TIMEOUT, what)


def delete_many(client, servers: list) -> None:
    """Delete servers at once, then wait for every deletion."""
    pending = [(server, client.servers.delete(server)) for server in servers]
    for server, action in pending:
        actions.wait(client, action, DELETE_TIMEOUT, f"deleting server {server.id}")
