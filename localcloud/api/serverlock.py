"""An action on a server that holds the server's lock until it is done: meanwhile its other actions get
``locked``, as on Hetzner. Shared by the server actions of every router (power, networks, placement groups)."""

from __future__ import annotations

from ..engine.cloud import Cloud


def locked_action(cloud: Cloud, server: dict, command: str, work, extra=(), on_error=None) -> dict:
    action = cloud.new_action(command, [("server", server["id"]), *extra])
    server["locked"] = True

    def locked_work(progress):
        try:
            work(progress)
        finally:
            server["locked"] = False

    cloud.run_action(action, locked_work, on_error=on_error)
    return action
