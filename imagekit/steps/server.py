"""A server for a build, a check or a round trip: created labelled, recorded before any wait,
deleted by its cleanup (or kept, with a working ``ssh`` line, when the operator asked)."""

from __future__ import annotations

from hcloud.images import BoundImage
from hcloud.locations import BoundLocation
from hcloud.server_types import BoundServerType

from ..cloud import actions

DELETE_TIMEOUT = 300


class CreateServer:
    """Needs ``server_type``, ``image``, ``location`` and ``user_data`` on the state besides a HostJob's."""

    def __init__(self, name: str = "server"):
        self.name = name

    def run(self, s) -> None:
        stype: BoundServerType = s.server_type
        image: BoundImage = s.image
        location: BoundLocation | None = s.location
        resp = s.client.servers.create(
            name=s.resource_name, server_type=stype, image=image, ssh_keys=[s.ssh_key, *s.extra_keys],
            labels=s.labels, location=location, user_data=getattr(s, "user_data", None))
        s.server = resp.server  # recorded before any wait, so a failed wait is still cleaned up
        actions.wait(s.client, resp.action, s.remaining(), f"creating {self.name}", check=s.check)
        s.server.reload()
        s.ip = s.server.public_net.ipv4.ip

    def cleanup(self, s) -> None:
        if s.server is None:
            return
        if s.keep():
            how = f"ssh -i {s.key_file} root@{s.ip}" if s.key_file else f"ssh root@{s.ip}"
            s.progress(f"keeping {self.name} {s.server.id} for debugging: {how} "
                       "(delete it with `invoke gc` when done)")
            return
        delete(s.client, s.server, f"deleting {self.name} {s.server.id}")


def delete(client, server, what: str) -> None:
    actions.wait(client, client.servers.delete(server), DELETE_TIMEOUT, what)


def delete_many(client, servers: list) -> None:
    """Delete servers at once, then wait for every deletion."""
    pending = [(server, client.servers.delete(server)) for server in servers]
    for server, action in pending:
        actions.wait(client, action, DELETE_TIMEOUT, f"deleting server {server.id}")
