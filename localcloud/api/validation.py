"""Checks of request bodies that the real API makes, shared by the resources that need them."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

from ..errors import invalid_input

USER_DATA_LIMIT = 32 * 1024
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


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
            if not isinstance(port, str) or not re.fullmatch(r"(any|\d{1,5}(-\d{1,5})?)", port):
                raise invalid_input(field, "port must be a port, a range 'from-to' or 'any' for tcp/udp")
        elif port is not None:
            raise invalid_input(field, "port is only allowed for tcp and udp")
        ips_field = "source_ips" if r["direction"] == "in" else "destination_ips"
        ips = r.get(ips_field) or []
        for ip in ips:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise invalid_input(field, f"{ip!r} in {ips_field} is not a CIDR") from None
        out.append({"direction": r["direction"], "protocol": r["protocol"], "port": port,
                    "source_ips": ips if r["direction"] == "in" else [],
                    "destination_ips": ips if r["direction"] == "out" else [],
                    "description": r.get("description")})
    return out
