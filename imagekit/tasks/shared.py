"""What the task modules share: the one wrapper and its option parsers (imagekit.command), the help texts several
tasks give, and the parsing of agent ids and paths."""

from __future__ import annotations

from pathlib import Path

from ..command import TOKEN_HELP, number, run, say, whole_number

__all__ = ["LOCATION_HELP", "RUN_ID_HELP", "TTL_HELP", "TOKEN_HELP", "agent_ids", "number", "path", "run", "say",
           "whole_number"]

LOCATION_HELP = ("a location, or locations tried in order when one has no capacity (fsn1,nbg1,hel1); the server's "
                 "`location` label records where it landed (default IMAGEKIT_LOCATION, else the API's choice)")

RUN_ID_HELP = ("this run's id, on everything it makes (label `run`), so that `invoke gc --run ID` sweeps what it left "
               "if it is cancelled; a workflow passes its own (default: a new one)")

TTL_HELP = ("how long the hosts may live, e.g. 90m, 4h, 2d (units s, m, h, d): their `expires-at` label (a unix time); "
            "`invoke gc` deletes them once it has passed, with their Tailscale devices (default: no expiry)")


def agent_ids(raw: list[str] | None) -> list[str]:
    """--agent-id values (repeated, or comma-separated), each checked."""
    from .. import agentid

    found = [part.strip() for value in raw or [] for part in value.split(",") if part.strip()]
    for agent in found:
        agentid.server_name(agent)
    return found


def path(value: str | None) -> Path | None:
    return Path(value) if value else None
