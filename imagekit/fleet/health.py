"""An agent's health as ``status`` reports it (``--json``: ``agents``): one row per agent server, which
``status --metrics`` exports and ``status --watch`` tracks, printing its changes and alerting on them."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class AgentHealth(TypedDict):
    agent_id: str | None
    server_id: int | None
    name: str
    ipv4: str | None  # the address imagekit reaches it on (cloud.servers.address)
    private_ip: NotRequired[str | None]  # its address on its (first) private network; None: on none
    status: str | None  # the server's
    ssh: bool | None  # None: not tried
    service: str | None  # the profile's unit's ActiveState
    restarts: int | None
    uptime_seconds: float | None
    tailscale_online: bool | None
    snapshot_id: int | None
    newest_snapshot_id: int | None
    drift: bool
    code_digest: str | None  # of the code it runs (its code-digest label: provision, update)
    provisioned_at: str | None
    server_type: str | None
    location: str | None
    hourly_cost_gross: float | None
    expires_at: NotRequired[str | None]  # its --ttl's end (ISO, UTC), after which gc deletes it; None: no TTL
    problems: list[str]  # what a check found wrong
    unchecked: list[str]  # what could not be checked, and why
    labels: NotRequired[dict[str, str]]  # the operator's own labels on the server (--label), not imagekit's
    healthy: NotRequired[bool | None]  # set last, from the two above: None is unchecked


class Change(TypedDict):
    """What the watch prints when an agent's state or findings change (``--json``: one object a line)."""

    time: str
    agent_id: str
    state: str  # healthy | unhealthy | unchecked | gone
    was: str | None
    server_id: int | None
    problems: list[str]
    unchecked: list[str]


class Alert(TypedDict):
    """What an alert command reads on stdin and a webhook receives."""

    event: str  # unhealthy | unchecked | recovered
    time: str
    agent_id: str
    server_id: int | None
    name: str | None
    ipv4: str | None
    failures: int
    failing_since: str | None
    problems: list[str]
    unchecked: list[str]
    source: str
    down_seconds: NotRequired[int]  # recovered: how long it was down
