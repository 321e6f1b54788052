"""Each guest's requests to 169.254.169.254:80 reach its own metadata listener, chosen by the link they came from.

The guest's bridge port marks them (``guests.bridgefilter``); here, in this local cloud's ``ip`` table, a mark is
redirected (DNAT) to its guest's listener on the host's bridge address, and the listeners' ports take nothing that
was not redirected there, so a guest cannot knock on another's listener directly. The ``inet`` table keeps routed
guest traffic on the bridge: the bridge forwards (guests talk to each other through the host, as on Hetzner), but
nothing a guest sends leaves it for another interface of the host.
"""

from __future__ import annotations

from ..paths import BRIDGE, GUEST_TABLE, HOST_ADDRESS, METADATA_ADDRESS

MARK_BASE = 0x4C430000  # "LC" in the high half; the low half is the machine's slot


def render(redirects: list[tuple[int, int]], table: str = GUEST_TABLE) -> str:
    """The nft script for the pinned machines' ``(mark, listener port)`` pairs (replaces both tables)."""
    ports = sorted(port for _, port in redirects)
    script = [f"table ip {table}", f"delete table ip {table}", f"table inet {table}", f"delete table inet {table}",
              f"table ip {table} {{",
              "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;"]
    script += [f'    iifname "{BRIDGE}" meta mark {mark:#x} ip daddr {METADATA_ADDRESS} tcp dport 80 '
               f"dnat to {HOST_ADDRESS}:{port}" for mark, port in sorted(redirects)]
    script += ["  }", "  chain input {", "    type filter hook input priority filter; policy accept;"]
    if ports:
        listed = ", ".join(map(str, ports))
        script += [f"    ip daddr {HOST_ADDRESS} tcp dport {{ {listed} }} ct status dnat accept",
                   f"    ip daddr {HOST_ADDRESS} tcp dport {{ {listed} }} drop"]
    script += ["  }", "}",
               f"table inet {table} {{", "  chain forward {",
               "    type filter hook forward priority filter - 1; policy accept;",
               f'    iifname "{BRIDGE}" oifname != "{BRIDGE}" drop',
               f'    oifname "{BRIDGE}" iifname != "{BRIDGE}" drop', "  }", "}"]
    return "\n".join(script) + "\n"
