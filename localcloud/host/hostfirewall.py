"""Hetzner firewalls enforced on the host with nftables, in front of each guest's address.

As on Hetzner, a server with firewalls attached gets only the inbound traffic one of their ``in``
rules allows; replies to connections the guest opened always pass. The rules sit in the host's
output and forward hooks, so they filter what the host and anything routed through it send to a
guest (clients, tests, the toolkit), and what another guest sends it (routed through the host, or across the
bridge: br_netfilter hands bridged IPv4 and IPv6 to the forward hook, ``bridgefilter.filter_bridged_traffic``).
They apply to the server's IPv4 address and to its IPv6 /64 alike, each with the rules' sources of its family
(``0.0.0.0/0`` and ``::/0``, as Hetzner's rules carry both). ``out`` rules are stored, not enforced.
What the platform itself sends a server passes whatever its rules, as on Hetzner: the host's DHCP answers and
its IPv6 neighbour discovery (without them a server with a firewall would lose its address).
"""

from __future__ import annotations

import ipaddress
import re

from ..paths import FIREWALL_TABLE
from .hostcmd import run

TABLE = FIREWALL_TABLE
_PROTOCOLS = {4: {"icmp": "icmp", "esp": "esp", "gre": "gre"}, 6: {"icmp": "ipv6-icmp", "esp": "esp", "gre": "gre"}}
_FAMILY = {4: "ip", 6: "ip6"}
# What the host itself sends guests as the platform (only in the output hook: guests cannot send it as the host)
PLATFORM = ("udp sport 67 udp dport 68 accept; "
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept; ")


def _chain(address: str) -> str:
    return "in_" + re.sub(r"\W", "_", address)


def render(guests: dict[str, list[dict]]) -> str:
    """The nft script for ``{guest IPv4 address or IPv6 /64: inbound rules of its firewalls}`` (replaces the whole
    table)."""
    script = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    if not guests:
        return "\n".join(script) + "\n"
    script.append(f"table inet {TABLE} {{")
    script.append("  chain guests {")
    nets = {address: ipaddress.ip_network(address, strict=False) for address in guests}
    script += [f"    {_FAMILY[net.version]} daddr {net} jump {_chain(address)}"
               for address, net in sorted(nets.items())]
    script.append("  }")
    for hook, platform in (("output", PLATFORM), ("forward", "")):
        script.append(f"  chain {hook} {{ type filter hook {hook} priority filter; policy accept; "
                      f"ct state established,related accept; {platform}jump guests; }}")
    for address, rules in sorted(guests.items()):
        script.append(f"  chain {_chain(address)} {{")
        script += [f"    {match} accept" for match in filter(None, (_match(r, nets[address].version) for r in rules))]
        script += ["    drop", "  }"]
    script.append("}")
    return "\n".join(script) + "\n"


def _match(rule: dict, version: int) -> str | None:
    """One ``in`` rule as an nft match for traffic of IP ``version``; None when it has no source of that family."""
    nets = [n for n in (ipaddress.ip_network(s, strict=False) for s in rule["source_ips"]) if n.version == version]
    if not nets:
        return None
    parts = ([] if any(n.prefixlen == 0 for n in nets)
             else [f"{_FAMILY[version]} saddr {{ " + ", ".join(map(str, nets)) + " }"])
    if rule["protocol"] in ("tcp", "udp"):
        port = rule["port"]
        parts.append(f"meta l4proto {rule['protocol']}" if port == "any" else f"{rule['protocol']} dport {port}")
    else:
        parts.append(f"meta l4proto {_PROTOCOLS[version][rule['protocol']]}")
    return " ".join(parts)


def enforce(guests: dict[str, list[dict]]) -> None:
    """Load the rules into the host's nftables, atomically."""
    run(["nft", "-f", "-"], input=render(guests))
