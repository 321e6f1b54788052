"""Which agents a fleet command acts on: one listing for the whole fleet."""

from __future__ import annotations

from hcloud import Client
from hcloud.servers import BoundServer

from .. import agentid
from ..cloud import api


def agent_servers(client: Client, agent_ids: list[str], selector: str | None) -> list[BoundServer]:
    """The agents' servers, by name; one API listing however many agents (``agent-id in (...)``)."""
    wanted = api.selector(role="agent")
    if agent_ids:
        wanted += f",agent-id in ({','.join(agentid.server_name(a) for a in agent_ids)})"
    if selector:
        wanted += f",{selector}"
    return sorted(client.servers.get_all(label_selector=wanted), key=lambda s: s.name or "")
