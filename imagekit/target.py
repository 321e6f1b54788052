"""Which cloud a command talks to: Hetzner when a token is set, else the local cloud.

Resolved in one place so every task behaves the same and says which cloud it uses.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

HETZNER_ENDPOINT = "https://api.hetzner.cloud/v1"


@dataclass(frozen=True)
class Target:
    endpoint: str
    token: str
    local: bool

    def describe(self) -> str:
        return f"local cloud at {self.endpoint}" if self.local else f"Hetzner Cloud API at {self.endpoint}"


def resolve(announce=lambda msg: print(msg, file=sys.stderr)) -> Target:
    token = os.environ.get("HCLOUD_TOKEN") or os.environ.get("HETZNER_API_TOKEN")
    if token:
        return Target(os.environ.get("HCLOUD_ENDPOINT") or HETZNER_ENDPOINT, token, local=False)
    from .localcloud import control

    ep = control.up(progress=announce)
    announce(f"HCLOUD_TOKEN is not set: using the local cloud at {ep.endpoint} (set HCLOUD_TOKEN to use Hetzner)")
    return Target(ep.endpoint, ep.token, local=True)
