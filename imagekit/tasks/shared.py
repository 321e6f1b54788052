"""What the task modules share: the one wrapper and its option parsers (imagekit.command), the help texts several
tasks give, and the parsing of agent ids and paths."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from invoke import Task

from ..command import TOKEN_HELP, number, run, say, whole_number

__all__ = ["LABEL_HELP", "LOCATION_HELP", "NETWORK_HELP", "RUN_ID_HELP", "TOKEN_HELP", "TTL_HELP", "LetterFlags",
           "LetterFlagsNoDashH", "NoDashH", "agent_ids", "given_flag", "number", "path", "run", "say", "whole_number"]

LOCATION_HELP = ("a location, or locations tried in order when one has no capacity (fsn1,nbg1,hel1); the server's "
                 "`location` label records where it landed (default IMAGEKIT_LOCATION, else the API's choice)")

RUN_ID_HELP = ("this run's id, on everything it makes (label `run`), so that `invoke gc --run ID` sweeps what it left "
               "if it is cancelled; a workflow passes its own (default: a new one)")

LABEL_HELP = ("your own label KEY=VALUE on every server it makes (repeat for more; Hetzner's label rules; not one of "
              "imagekit's keys such as role or run); `status --json` shows them")


class NoDashH(Task[Any]):
    """A task whose automatic short flags leave -h alone: `invoke TASK -h` stays its help."""

    reserved = frozenset({"h"})

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        return dict(super().arg_opts(name, default, taken_names | self.reserved))


class LetterFlags(NoDashH):
    """Automatic short flags that are letters: once the letters of a name are taken invoke takes its '-'
    (`--ssh-via` got `--`), which is no flag. Tasks whose existing flags must not move (provision's) keep NoDashH."""

    reserved = frozenset({"-", "_"})


class LetterFlagsNoDashH(NoDashH):
    reserved = LetterFlags.reserved | NoDashH.reserved


def given_flag(name: str, value: bool) -> bool | None:
    """A flag that is on by default (``--NAME``/``--no-NAME``) as given on the command line; None when not given, so
    that its setting decides."""
    options = sys.argv[1:sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:]  # not the command after `--`
    return value if not value or f"--{name}" in options else None
RECYCLE_HELP = ("minutes a server must have left of its paid hour to be recycled into the warm pool instead of "
                "deleted, while the pool is below its size (0-59; 0: always delete; default IMAGEKIT_RECYCLE_MIN "
                "or 15)")


NETWORK_HELP = {
    "network": "an existing private network (name or id) the servers join (repeat for more; default IMAGEKIT_NETWORK, "
               "names comma-separated)",
    "ssh_via": "public (default; IMAGEKIT_SSH_VIA) or private: reach the servers on their address on the (first) "
               "--network, when imagekit runs inside that network (a bastion or a self-hosted runner)",
}

IPV4_HELP = ("--ipv4 / --no-ipv4: a public IPv4 on every server, or IPv6-only servers (no IPv4 to pay for) reached "
             "over IPv6, which needs an IPv6 route from this machine (default IMAGEKIT_IPV4, else --ipv4)")
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
