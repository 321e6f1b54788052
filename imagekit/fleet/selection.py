"""Which agents a fleet command acts on (one listing for the whole fleet), and the operator's key that
reaches them once provisioning has removed its own."""

from __future__ import annotations

from typing import Literal, overload

from hcloud import Client
from hcloud.servers import BoundServer

from .. import agentid, settings
from ..cloud import api
from ..errors import InputError
from ..host.keys import KeyPair, load_ed25519


def agent_servers(client: Client, agent_ids: list[str], selector: str | None) -> list[BoundServer]:
    """The agents' servers, by name; one API listing however many agents (``agent-id in (...)``)."""
    wanted = api.selector(role="agent")
    if agent_ids:
        wanted += f",agent-id in ({','.join(agentid.server_name(a) for a in agent_ids)})"
    if selector:
        wanted += f",{selector}"
    return sorted(client.servers.get_all(label_selector=wanted), key=lambda s: s.name or "")


@overload
def operator_key(required: Literal[True], why: str) -> KeyPair: ...


@overload
def operator_key(required: bool, why: str) -> KeyPair | None: ...


def operator_key(required: bool, why: str) -> KeyPair | None:
    """SSH_PRIVATE_KEY_PATH: the private half of HETZNER_SSH_KEY_ID, the one key left on ready hosts."""
    path = settings.get("SSH_PRIVATE_KEY_PATH")
    if path:
        return load_ed25519(path)
    if required:
        raise InputError(f"SSH_PRIVATE_KEY_PATH is not set: {why} over SSH with your key (the private half of "
                         "HETZNER_SSH_KEY_ID); set it to that key's file")
    return None
