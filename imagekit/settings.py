"""Settings: environment variables first, then an optional config file, then defaults.

The file is ``IMAGEKIT_CONFIG``, else ``./imagekit.yml`` when there is one: a YAML mapping whose
keys are the variables' names (``AURA_API_URL: https://...``). Secrets are refused there: they
belong in the environment (or ``--token-file``), not in a file that gets copied around.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from typing import Literal, overload
from urllib.parse import urlsplit

import yaml

from .errors import InputError

DEFAULTS: dict[str, str | None] = {
    "HCLOUD_ENDPOINT": None,
    "HETZNER_SNAPSHOT_ID": None,
    "HETZNER_SSH_KEY_ID": None,
    "SSH_PRIVATE_KEY_PATH": None,
    "AURA_API_URL": None,
    "TAILSCALE_OAUTH_CLIENT_ID": None,
    "TAILSCALE_API_URL": None,
    "TAILSCALE_TAGS": "tag:openclaw-agent",
    "TAILSCALE_TAILNET": "-",
    "IMAGEKIT_LOCATION": None,
    "IMAGEKIT_SERVER_TYPE": "cx23",
    "IMAGEKIT_ARCH": None,  # what build-snapshot builds: x86, arm or x86,arm (unset: the server type's); arch()
    "IMAGEKIT_ARM_SERVER_TYPE": "cax11",  # build-snapshot's arm builder under --arch
    "IMAGEKIT_BASE_IMAGE": "debian-12",
    "IMAGEKIT_SECRETS_FILE": None,  # dotenv file of secrets for agents and jobs (the file, not its values)
    "IMAGEKIT_NODE_MAJOR": "22",  # the images' Node.js major; see node_major()
    # Seconds between renewals of a run's leases (cloud/leases.py); a lease reaches five of them ahead, so gc
    # sweeps what a killed run left five intervals after it died. Tests that wait a lease out shorten it.
    "IMAGEKIT_LEASE_INTERVAL": "60",
    "IMAGEKIT_IPV4": "1",  # servers get a public IPv4 (Hetzner bills it); 0: IPv6 only. See ipv4()
    # Minutes a given-up server (a deprovisioned agent, a finished job's) must have left of its paid hour to be
    # recycled into the pool instead of deleted (pool/recycle.py); 0: always deleted.
    "IMAGEKIT_RECYCLE_MIN": "15",
    "IMAGEKIT_NETWORK": None,  # private networks the servers join (names or ids, comma-separated). See networks()
    "IMAGEKIT_SSH_VIA": None,  # public (default) or private: the address imagekit reaches servers on (cloud.networks)
    # Caps checked before provision, pool fill and run create servers (steps/caps.py); unset: no cap.
    "IMAGEKIT_MAX_SERVERS": None,  # servers in the project, imagekit's or not
    "IMAGEKIT_MAX_HOURLY": None,  # what the project's servers and Primary IPv4s cost per hour, gross, API's currency
}
# The settings with a default, never None (tests/imagekit/unit/test_imagekit_types.py holds this list to DEFAULTS).
Defaulted = Literal["TAILSCALE_TAGS", "TAILSCALE_TAILNET", "IMAGEKIT_SERVER_TYPE", "IMAGEKIT_BASE_IMAGE",
                    "IMAGEKIT_NODE_MAJOR", "IMAGEKIT_RECYCLE_MIN", "IMAGEKIT_ARM_SERVER_TYPE"]
SECRETS = {"HCLOUD_TOKEN", "HETZNER_API_TOKEN", "TAILSCALE_OAUTH_CLIENT_SECRET"}
# Where tokens and secrets are sent: only from the environment (or an option), never from a config file
# (one found in the current directory could redirect them), and https unless on loopback.
ENDPOINTS = {"HCLOUD_ENDPOINT", "TAILSCALE_API_URL"}


ARCHITECTURES = ("x86", "arm")  # Hetzner's names (server types' and images' `architecture`)
# Node.js majors an image may carry: supported releases only (Node.js 20 reached its end of life in April 2026).
NODE_MAJORS = ("20", "22", "24")


class SettingsError(InputError):
    pass


def config_path() -> Path | None:
    if os.environ.get("IMAGEKIT_CONFIG"):
        return Path(os.environ["IMAGEKIT_CONFIG"]).expanduser()
    local = Path("imagekit.yml")
    return local if local.exists() else None


@functools.lru_cache(maxsize=None)
def _file(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror}; fix IMAGEKIT_CONFIG") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SettingsError(f"the config file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") \
            from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"the config file {path} must be a mapping of settings (KEY: value)")
    if secret := sorted(SECRETS & set(data)):
        raise SettingsError(f"the config file {path} holds {', '.join(secret)}: secrets go in the environment "
                            "(or --token-file), never in a config file")
    if endpoints := sorted(ENDPOINTS & set(data)):
        raise SettingsError(f"the config file {path} sets {', '.join(endpoints)}: API endpoints come only from the "
                            "environment, so that a config file cannot send your tokens elsewhere")
    if unknown := sorted(set(map(str, data)) - set(DEFAULTS)):
        raise SettingsError(f"the config file {path} has unknown settings: {', '.join(unknown)}; "
                            f"known: {', '.join(DEFAULTS)}")
    bad = sorted(k for k, v in data.items() if isinstance(v, (dict, list)))
    if bad:
        raise SettingsError(f"the config file {path}: {', '.join(bad)} must be a plain value")
    return {k: str(v) for k, v in data.items() if v is not None}


def load() -> dict[str, str]:
    """The config file's settings (validated); call early so a bad file fails before any work."""
    return _file(config_path())


@overload
def get(name: Defaulted) -> str: ...


@overload
def get(name: str) -> str | None: ...


def get(name: str) -> str | None:
    if name not in DEFAULTS:
        raise KeyError(name)
    if name in ENDPOINTS:
        return endpoint(name)
    return os.environ.get(name) or load().get(name) or DEFAULTS[name]


def endpoint(name: str) -> str | None:
    """An API endpoint from the environment: https, or plain http on loopback only (tokens travel to it)."""
    value = os.environ.get(name) or None
    if value is None:
        return None
    url = urlsplit(value)
    try:
        loopback = ipaddress.ip_address(url.hostname or "").is_loopback
    except ValueError:
        loopback = url.hostname == "localhost"
    if not url.hostname or url.scheme not in ("https", "http") or (url.scheme == "http" and not loopback):
        raise SettingsError(f"{name} {value!r} must be an https:// URL (plain http only on loopback, such as the "
                            "local cloud): API tokens are sent to it")
    return value


@overload
def choose(value: str | None, name: Defaulted) -> str: ...


@overload
def choose(value: str | None, name: str) -> str | None: ...


def choose(value: str | None, name: str) -> str | None:
    """An option given on the command line wins; otherwise the setting ``name``."""
    return value if value not in (None, "") else get(name)


def lease_interval() -> float:
    """IMAGEKIT_LEASE_INTERVAL in seconds (at least 1): how often a run renews its leases."""
    value = get("IMAGEKIT_LEASE_INTERVAL") or ""
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds < 1:
        raise SettingsError(f"IMAGEKIT_LEASE_INTERVAL {value!r}: give a number of seconds, at least 1")
    return seconds


def node_major() -> int:
    """IMAGEKIT_NODE_MAJOR, the Node.js major of the images (NodeSource's repository of that major in
    production; the local cloud's packaging of the official binaries there), one of NODE_MAJORS."""
    value = get("IMAGEKIT_NODE_MAJOR").strip()
    if value not in NODE_MAJORS:
        raise SettingsError(f"IMAGEKIT_NODE_MAJOR {value!r} is not a Node.js major imagekit builds with: "
                            f"accepted values are {', '.join(NODE_MAJORS)}")
    return int(value)


def arch(given: str | None) -> tuple[str, ...]:
    """``--arch`` or IMAGEKIT_ARCH as architectures in the given order (x86, arm or x86,arm); () when neither is
    given: the builder's server type decides, as before there were two."""
    value = choose(given, "IMAGEKIT_ARCH") or ""
    found = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if unknown := [a for a in found if a not in ARCHITECTURES]:
        raise SettingsError(f"--arch {value!r}: {', '.join(unknown)} is not an architecture; give x86, arm or "
                            "x86,arm (Hetzner's names: arm is the CAX types)")
    return found


def ipv4(given: bool | None) -> bool:
    """Whether servers get a public IPv4: ``--ipv4``/``--no-ipv4`` when given, else IMAGEKIT_IPV4 (1 or 0, default
    1)."""
    if given is not None:
        return given
    value = (get("IMAGEKIT_IPV4") or "1").strip().lower()
    if value not in ("1", "0", "yes", "no", "true", "false"):
        raise SettingsError(f"IMAGEKIT_IPV4 {value!r}: give 1 (a public IPv4 on every server) or 0 (IPv6 only)")
    return value in ("1", "yes", "true")


def networks(given: list[str] | None, via: str | None) -> tuple[tuple[str, ...], str]:
    """``--network`` (repeated, or NAME,NAME) else IMAGEKIT_NETWORK, and ``--ssh-via`` else IMAGEKIT_SSH_VIA (default
    public)."""
    values = given or [get("IMAGEKIT_NETWORK") or ""]
    return (tuple(v.strip() for value in values for v in value.split(",") if v.strip()),
            (choose(via, "IMAGEKIT_SSH_VIA") or "public").strip())
