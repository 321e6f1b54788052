"""The operator's own labels (``--label KEY=VALUE``): checked against Hetzner's label rules before anything exists,
and never one of imagekit's own keys, by which it finds, leases, pins, pools and rolls what it made. ``status``
shows a server's labels without imagekit's (``operator_labels``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..errors import InputError

# Every key imagekit itself puts on a server, a snapshot, a key, a firewall or a placement group (the unit tests
# check the constants named in other modules are here: runid.LABEL, leases.KEY, hostkey.LABEL, ttl.LABEL, ...), and
# the prefix of the keys a snapshot names its baked container images by (bake.IMAGE_LABEL).
IMAGEKIT_KEYS = frozenset({
    "managed-by", "role", "profile", "mode", "deployment", "tailscale", "agent-id", "run", "location",
    "lease-until", "host-key", "rolling-from", "rebuilding-until", "pool", "pool-key", "job-id", "build-id",
    "base-image", "source-revision", "version", "parent-snapshot", "inputs-hash", "ssh-from", "expires-at",
    "code-digest", "bundle-digest", "pool-size", "ssh-via", "ipv4",
})
IMAGEKIT_PREFIXES = ("baked-image-",)

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
NAME_RULE = ("at most 63 characters: letters, digits, '-', '_' and '.', beginning and ending with a letter or "
             "digit")
PREFIX_RULE = "an optional prefix before '/' is a DNS subdomain (lower case, at most 253 characters)"


def parse(raw: Iterable[str]) -> dict[str, str]:
    """``--label KEY=VALUE`` values (repeated) as labels, each checked; the first wrong one is named with the rule
    it breaks."""
    found: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--label {item!r}: give KEY=VALUE, e.g. --label team=payments")
        check(key, value)
        if key in found and found[key] != value:
            raise InputError(f"--label {key}: given twice ({found[key]!r} and {value!r}): give it once")
        found[key] = value
    return found


def check(key: str, value: str) -> None:
    """Hetzner's rules for one label (its keys and values follow Kubernetes'), and imagekit's keys refused."""
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        raise InputError(f"--label {key}={value}: the key's prefix {prefix!r} is not allowed: {PREFIX_RULE}")
    if not _NAME.fullmatch(name):
        raise InputError(f"--label {key}={value}: the key {name!r} is not allowed: a label key's name is "
                         f"{NAME_RULE}")
    if value and not _NAME.fullmatch(value):
        raise InputError(f"--label {key}={value}: the value {value!r} is not allowed: a label value is empty or "
                         f"{NAME_RULE}")
    if key in IMAGEKIT_KEYS or key.startswith(IMAGEKIT_PREFIXES):
        raise InputError(f"--label {key}={value}: {key!r} is one of imagekit's own label keys (it finds and manages "
                         f"its servers by them: {', '.join(sorted(IMAGEKIT_KEYS))}): choose another key, e.g. "
                         f"my-{key}")


def operator_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """A resource's labels without imagekit's own: the operator's."""
    return {k: v for k, v in sorted((labels or {}).items())
            if k not in IMAGEKIT_KEYS and not k.startswith(IMAGEKIT_PREFIXES)}

