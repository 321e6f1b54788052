"""Agent ids and the names derived from them.

An agent's server is found by the label ``agent-id`` and is named after the agent, so the
id must make both a valid hostname (RFC 1123 label) and a valid label value. Ids are kept
as the operator wrote them in ``agent.env``; the name is their lower-case form with ``_``
and ``.`` turned into ``-``.
"""

from __future__ import annotations

import re

from .errors import InputError

MAX_LENGTH = 63
_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


class InvalidAgentId(InputError):
    pass


def server_name(agent_id: str) -> str:
    """The server name (and ``agent-id`` label value) of an agent; InvalidAgentId says why not."""
    if not isinstance(agent_id, str) or not agent_id:
        raise InvalidAgentId("an agent id is needed: pass --agent-id ID (letters, digits, '-', '_', '.')")
    if not _ID.fullmatch(agent_id):
        raise InvalidAgentId(f"agent id {agent_id!r} cannot become a hostname: use letters, digits, '-', '_' "
                             "and '.', starting and ending with a letter or digit (e.g. 'agent-42')")
    if len(agent_id) > MAX_LENGTH:
        raise InvalidAgentId(f"agent id {agent_id[:20]!r}... is {len(agent_id)} characters; a hostname allows "
                             f"at most {MAX_LENGTH}: use a shorter id")
    name = re.sub(r"[._]+", "-", agent_id.lower())
    return re.sub(r"-{2,}", "-", name)


def expand(agent_ids: list[str], count: int | None) -> list[str]:
    """The ids to provision: each ``--agent-id`` (comma-separated lists too), or ``--count`` numbered ones.

    ``--count N`` with one id gives ``ID-1`` ... ``ID-N``; without an id, ``agent-1`` ... ``agent-N``.
    """
    ids = [part.strip() for raw in agent_ids for part in raw.split(",") if part.strip()]
    if count is not None:
        if count < 1 or count > 100:
            raise InvalidAgentId(f"--count {count}: give a number from 1 to 100")
        if len(ids) > 1:
            raise InvalidAgentId("--count numbers one id prefix: pass one --agent-id with --count, or list the ids")
        prefix = ids[0] if ids else "agent"
        ids = [f"{prefix}-{i}" for i in range(1, count + 1)]
    if not ids:
        raise InvalidAgentId("no agent given: pass --agent-id ID (repeat it or separate ids by commas) or --count N")
    names = [server_name(i) for i in ids]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidAgentId(f"these ids name the same server: {', '.join(dupes)}; give each agent its own id")
    return ids
