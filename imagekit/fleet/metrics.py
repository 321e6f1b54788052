"""``status --metrics FILE``: the fleet's health and cost in Prometheus' text exposition format, for
node-exporter's textfile collector (which reads ``*.prom`` files and rejects samples with timestamps). The file is
written beside itself and renamed into place, so the collector never reads half of it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from .health import AgentHealth

Value = bool | int | float | None  # a sample's value: yes/no, a number, or not known (no sample)

# name -> (help, the row's value: 1/0 for yes/no, a number, or None when it is not known: no sample)
AGENT_METRICS: dict[str, tuple[str, Callable[[AgentHealth], Value]]] = {
    "imagekit_agent_healthy": ("1 when every check passed; 0 when one failed or could not be made",
                               lambda a: a["healthy"] is True),
    "imagekit_agent_checked": ("1 when every check could be made (the agent is healthy or unhealthy, not unchecked)",
                               lambda a: a["healthy"] is not None),
    "imagekit_agent_up": ("1 when the server runs and the agent's service is active",
                          lambda a: False if a["status"] != "running" else
                          None if a["service"] is None else a["service"] == "active"),
    "imagekit_agent_restarts": ("times systemd restarted the agent's service since it was last (re)started",
                                lambda a: a["restarts"]),
    "imagekit_agent_uptime_seconds": ("seconds the agent's process has run", lambda a: a["uptime_seconds"]),
    "imagekit_agent_tailscale_online": ("1 when the agent's Tailscale node is online", lambda a: a["tailscale_online"]),
    "imagekit_agent_snapshot_drift": ("1 when a newer snapshot of the agent's profile exists", lambda a: a["drift"]),
}
COST = "imagekit_agent_hourly_cost_euros"
FLEET_METRICS: dict[str, tuple[str, Callable[[list[AgentHealth]], Value]]] = {
    "imagekit_fleet_agents": ("agents status found", lambda agents: len(agents)),
    "imagekit_fleet_unhealthy_agents": ("agents with a failed check",
                                        lambda agents: sum(a["healthy"] is False for a in agents)),
    "imagekit_fleet_unchecked_agents": ("agents with a check that could not be made",
                                        lambda agents: sum(a["healthy"] is None for a in agents)),
    "imagekit_fleet_hourly_cost_euros": ("what the agents' servers cost per hour, gross (Hetzner's prices)",
                                         lambda agents: round(sum(a["hourly_cost_gross"] or 0 for a in agents), 4)),
    "imagekit_status_timestamp_seconds": ("when status checked the fleet (Unix time)", lambda agents: time.time()),
}


def render(agents: list[AgentHealth]) -> str:
    lines = []
    for name, (text, value) in AGENT_METRICS.items():
        lines += _family(name, text, [({"agent_id": a["agent_id"] or a["name"]}, value(a)) for a in agents])
    lines += _family(COST, "the agent's server's price per hour, gross (Hetzner bills every started hour)",
                     [({"agent_id": a["agent_id"] or a["name"], "server_type": a["server_type"],
                        "location": a["location"] or ""}, a["hourly_cost_gross"]) for a in agents])
    for name, (text, total) in FLEET_METRICS.items():
        lines += _family(name, text, [({}, total(agents))])
    return "\n".join(lines) + "\n"


def write(path: Path, agents: list[AgentHealth]) -> None:
    """Write the metrics to ``path`` whole: a temporary file beside it (not ``*.prom``), renamed into place."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as fh:
            fh.write(render(agents))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _family(name: str, text: str, samples: list[tuple[dict[str, str | None], Value]]) -> list[str]:
    out = [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        if value is None:
            continue
        tags = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        out.append(f"{name}{{{tags}}} {_number(value)}" if tags else f"{name} {_number(value)}")
    return out


def _number(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
