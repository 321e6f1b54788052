"""The environment the local cloud's API process (and so every guest's nspawn) runs with: only what it needs.

An operator's shell holds secrets (``HCLOUD_TOKEN``, ``TAILSCALE_OAUTH_CLIENT_SECRET``, ...); a process the
local cloud starts inherits nothing of it but the search path and locale, its own ``IMAGEKIT_LOCALCLOUD_*``
settings, the proxy settings it downloads Node.js releases through, and ``PYTHONPATH`` set to where the
``localcloud`` package was imported from, so that the API runs the same code as the client that started it
(a worktree on ``PYTHONPATH`` included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEEP = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
        "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")
OWN_PREFIX = "IMAGEKIT_LOCALCLOUD_"


def package_root() -> str:
    """The directory the ``localcloud`` package was imported from."""
    return str(Path(__file__).resolve().parent.parent)


def clean(env: Mapping[str, str]) -> dict[str, str]:
    """What of ``env`` the local cloud's processes get."""
    out = {k: v for k, v in env.items() if k in KEEP or k.startswith(OWN_PREFIX)}
    out["PATH"] = env.get("PATH") or DEFAULT_PATH
    out["PYTHONPATH"] = package_root()
    return out


def scrub() -> None:
    """Reduce this process's own environment to ``clean`` (an API started by hand passes nothing on either)."""
    kept = clean(os.environ)
    os.environ.clear()
    os.environ.update(kept)
