"""Hetzner firewalls enforced on the host with nftables, in front of each guest's address.

As on Hetzner, a server with firewalls attached gets only the inbound traffic one of their ``in``
rules allows; replies to connections the guest opened always pass. The rules sit in the host's
output and forward hooks, so they filter what the host and anything routed through it send to a
guest (clients, tests, the toolkit), and what another guest sends it across the bridge (br_netfilter
hands bridged IPv4 to the forward hook: ``bridgefilter.filter_bridged_traffic``). ``out`` rules are
stored, not enforced.
"""

from __future__ import annotations

import ipaddress

from ..paths import FIREWALL_TABLE
from .hostcmd import run

TABLE = FIREWALL_TABLE
_PROTOCOLS = {"icmp": "icmp", "esp": "esp", "gre": "gre"}


def render(guests: dict[str, list[dict]]) -> str:
    """The nft script for ``{guest address: inbound rules of its firewalls}`` (replaces the whole table)."""
    script = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    if not guests:
        return "\n".join(script) + "\n"
    script.append(f"table inet {TABLE} {{")
    script.append("  chain guests {")
    script += [f"    ip daddr {address} jump in_{address.replace('.', '_')}" for address in sorted(guests)]
    script.append("  }")
    for hook in ("output", "forward"):
        script.append(f"  chain {hook} {{ type filter hook {hook} priority filter; policy accept; "
                      "ct state established,related accept; jump guests; }")
    for address, rules in sorted(guests.items()):
        script.append(f"  chain in_{address.replace('.', '_')} {{")
        script += [f"    {match} accept" for match in filter(None, map(_match, rules))]
        script += ["    drop", "  }"]
    script.append("}")
    return "\n".join(script) + "\n"


def _match(rule: dict) -> str | None:
    """One ``in`` rule as an nft match; None when it cannot match IPv4 traffic (IPv6 sources only)."""
    nets = [n for n in (ipaddress.ip_network(s, strict=False) for s in rule["source_ips"]) if n.version == 4]
    if not nets:
        return None
    parts = [] if any(n.prefixlen == 0 for n in nets) else ["ip saddr { " + ", ".join(map(str, nets)) + " }"]
    if rule["protocol"] in ("tcp", "udp"):
        port = rule["port"]
        parts.append(f"meta l4proto {rule['protocol']}" if port == "any" else f"{rule['protocol']} dport {port}")
    else:
        parts.append(f"meta l4proto {_PROTOCOLS[rule['protocol']]}")
    return " ".join(parts)


def enforce(guests: dict[str, list[dict]]) -> None:
    """Load the rules into the host's nftables, atomically."""
    run(["nft", "-f", "-"], input=render(guests))
