"""Which cloud a command talks to: Hetzner when a token is set, else the local cloud.

Resolved in one place so every task behaves the same and says which cloud it uses. The
token comes from HCLOUD_TOKEN (or HETZNER_API_TOKEN), or per invocation from another
variable or a file, so one operator can drive several accounts without exporting tokens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import InputError

HETZNER_ENDPOINT = "https://api.hetzner.cloud/v1"


class TargetError(InputError):
    """The token could not be read; the message says where it was looked for and what to do."""


@dataclass(frozen=True)
class Target:
    endpoint: str
    token: str
    local: bool

    def describe(self) -> str:
        return f"local cloud at {self.endpoint}" if self.local else f"Hetzner Cloud API at {self.endpoint}"


def token_from(token_env: str | None = None, token_file: str | None = None) -> str | None:
    """The API token: from ``token_file``, from the variable ``token_env``, else the standard variables."""
    if token_file:
        try:
            token = Path(token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise TargetError(f"cannot read the API token file {token_file}: {exc.strerror}; "
                              "pass a readable file with --token-file") from None
        if not token:
            raise TargetError(f"the API token file {token_file} is empty")
        return token
    if token_env:
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise TargetError(f"--token-env {token_env}: that environment variable is not set or empty")
        return token
    return os.environ.get("HCLOUD_TOKEN") or os.environ.get("HETZNER_API_TOKEN") or None


def resolve(announce: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr), *, token_env: str | None = None,
            token_file: str | None = None) -> Target:
    token = token_from(token_env, token_file)
    endpoint = settings.get("HCLOUD_ENDPOINT")
    if token:
        return Target(endpoint or HETZNER_ENDPOINT, token, local=False)
    if endpoint:  # the operator meant a real cloud: silently using the local one would surprise
        raise TargetError(f"HCLOUD_ENDPOINT is set ({endpoint}) but no API token: set HCLOUD_TOKEN (or pass "
                          "--token-env/--token-file), or unset HCLOUD_ENDPOINT to use the local cloud")
    from localcloud import client as localcloud

    ep = localcloud.up(progress=announce)
    announce(f"HCLOUD_TOKEN is not set: using the local cloud at {ep.endpoint} (set HCLOUD_TOKEN to use Hetzner)")
    return Target(ep.endpoint, ep.token, local=True)
