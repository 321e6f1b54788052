"""Checks of request bodies that the real API makes, shared by the resources that need them."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import TypeGuard

from ..errors import invalid_input

USER_DATA_LIMIT = 32 * 1024
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# \Z, not $: $ also matches before a final newline, and Hetzner refuses "name\n".
HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\Z")
PORT_RE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")
MAX_RULE_IPS = 100
MAX_FIREWALL_NAME = 128
MAX_DESCRIPTION = 255


def list_field(body: dict, field: str) -> list:
    """An optional list in a request body; invalid_input (not a crash) when it is something else."""
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_input(field, f"{field} must be a list")
    return value


def ssh_fingerprint(public_key: str) -> str:
    """MD5 fingerprint of an OpenSSH public key, as the API reports it; invalid_input if malformed."""
    parts = public_key.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise invalid_input("public_key", "public_key must be an OpenSSH public key ('ssh-ed25519 AAAA... comment')")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise invalid_input("public_key", "public_key is not valid base64") from None
    type_len = int.from_bytes(blob[:4], "big") if len(blob) > 4 else 0
    if blob[4 : 4 + type_len].decode(errors="replace") != parts[0]:
        raise invalid_input("public_key", "public_key data does not match its key type")
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 - the API's fingerprint format is MD5
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


FIREWALL_NAME_RULE = f"name must be a non-empty string of at most {MAX_FIREWALL_NAME} characters"


def is_firewall_name(name: object) -> TypeGuard[str]:
    """A firewall's name as Hetzner takes it: a non-empty string of at most 128 characters."""
    return isinstance(name, str) and bool(name.strip()) and len(name) <= MAX_FIREWALL_NAME


def firewall_name(name: object) -> str:
    if not is_firewall_name(name):
        raise invalid_input("name", FIREWALL_NAME_RULE)
    return name


def validate_rules(rules) -> list[dict]:
    """Firewall rules as the API stores them; invalid_input naming the first bad rule."""
    if not isinstance(rules, list):
        raise invalid_input("rules", "rules must be a list")
    out = []
    for i, r in enumerate(rules):
        field = f"rules[{i}]"
        if not isinstance(r, dict) or r.get("direction") not in ("in", "out"):
            raise invalid_input(field, "direction must be 'in' or 'out'")
        if r.get("protocol") not in ("tcp", "udp", "icmp", "esp", "gre"):
            raise invalid_input(field, "protocol must be one of tcp, udp, icmp, esp, gre")
        port = r.get("port")
        if r["protocol"] in ("tcp", "udp"):
            _check_port(field, port)
        elif port is not None:
            raise invalid_input(field, "port is only allowed for tcp and udp")
        ips_field = "source_ips" if r["direction"] == "in" else "destination_ips"
        ips = r.get(ips_field) or []
        if not isinstance(ips, list) or len(ips) > MAX_RULE_IPS:
            raise invalid_input(field, f"{ips_field} must be a list of at most {MAX_RULE_IPS} CIDRs")
        for ip in ips:
            try:
                ipaddress.ip_network(ip if isinstance(ip, str) else "", strict=False)
            except ValueError:
                raise invalid_input(field, f"{ip!r} in {ips_field} is not a CIDR") from None
        description = r.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
            raise invalid_input(field, f"description must be a string of at most {MAX_DESCRIPTION} characters")
        out.append({"direction": r["direction"], "protocol": r["protocol"], "port": port,
                    "source_ips": ips if r["direction"] == "in" else [],
                    "destination_ips": ips if r["direction"] == "out" else [],
                    "description": r.get("description")})
    return out


def _check_port(field: str, port) -> None:
    """A tcp/udp rule's port: 'any', a port 1-65535, or a range 'from-to' with from <= to (nft refuses others)."""
    if port == "any":
        return
    m = PORT_RE.fullmatch(port) if isinstance(port, str) else None
    low, high = (int(m[1]), int(m[2] or m[1])) if m else (0, 0)
    if not (1 <= low <= high <= 65535):
        raise invalid_input(field, f"port {port!r} must be a port 1-65535, a range 'from-to' of such ports with "
                                   "from <= to, or 'any'")
