"""A server's attachments to private networks as interfaces of its guest, each pinned to its identity.

An attachment is a veth pair made in the network's namespace (``host/privatenet``): the end there, ``s<server
id>``, is a port of the network's bridge; the other end goes straight into the guest's network namespace, with
the attachment's MAC and the name a Hetzner VM gives its private interfaces (``enp7s0``, ``enp8s0``, ...), and
the guest's systemd-networkd asks the network's DHCP for its address (the system image matches those names,
``baseimage``). The same call serves a boot and a live attach: the guest sees a new link either way. Nothing
of it passes through the host's own network namespace, and the pair vanishes with the guest's namespace (a
power-off, a reboot) or with the network's.

The ports are pinned as ``guests/bridgefilter`` pins the public bridge's, in an nftables ``bridge`` table
inside the network's namespace: from a guest's port only its MAC, ARP and IPv4 from its addresses (its IP and
alias IPs, plus 0.0.0.0 for DHCP and address probes) pass; towards it only frames for its MAC or broadcast; a
port not pinned (yet) passes nothing. A guest cannot take another's address on the network, nor see its
unicast. (Its own table rather than ``bridgefilter``'s: alias IPs, DHCP from 0.0.0.0, and a table per namespace.)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..host.hostcmd import HostCommandError, run
from ..host.privatenet import SWITCH, Namespaces, NetworkSpec, namespace

log = logging.getLogger("localcloud")

PORT_PREFIX = "s"
TABLE = "ports"
MTU = 1450  # Hetzner's private networks' MTU
FIRST_SLOT = 7  # enp7s0: a Hetzner VM's first private interface
MAX_SLOTS = 16


@dataclass(frozen=True)
class Port:
    """One server's port on a network: its MAC and the addresses it may send from."""

    server_id: int
    mac: str
    ips: Sequence[str]

    @property
    def name(self) -> str:
        return f"{PORT_PREFIX}{self.server_id}"


def guest_ifname(slot: int) -> str:
    return f"enp{FIRST_SLOT + slot}s0"


def render(ports: Sequence[Port]) -> str:
    """The nft script of a network's port pins (replaces its whole table)."""
    script = [f"table bridge {TABLE}", f"delete table bridge {TABLE}", f"table bridge {TABLE} {{",
              "  chain from_guests {", "    type filter hook prerouting priority filter; policy accept;"]
    script += [f'    iifname "{p.name}" jump from_{p.name}' for p in ports]
    script += [f'    iifname "{PORT_PREFIX}*" drop', "  }"]
    for hook in ("forward", "output"):
        script += [f"  chain to_guests_{hook} {{", f"    type filter hook {hook} priority filter; policy accept;"]
        script += [f'    oifname "{p.name}" jump to_{p.name}' for p in ports]
        script += [f'    oifname "{PORT_PREFIX}*" drop', "  }"]
    for p in ports:
        sources = "{ " + ", ".join(["0.0.0.0", *p.ips]) + " }"
        script += [f"  chain from_{p.name} {{", f"    ether saddr != {p.mac} drop",
                   f"    arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether {p.mac} "
                   f"arp saddr ip {sources} accept",
                   f"    ip saddr {sources} accept", "    drop", "  }",
                   f"  chain to_{p.name} {{", f"    ether daddr {{ {p.mac}, ff:ff:ff:ff:ff:ff }} accept",
                   "    drop", "  }"]
    script.append("}")
    return "\n".join(script) + "\n"


class PrivateLinks:
    """The host side of private networks: their namespaces (``privatenet``) and the guests' ports on them."""

    def __init__(self, namespaces: Namespaces):
        self.namespaces = namespaces
        self._lock = threading.RLock()

    def apply(self, spec: NetworkSpec, ports: Sequence[Port]) -> None:
        """The network's namespace as ``spec`` says, its ports pinned to ``ports`` (servers attached now)."""
        with self._lock:
            self.namespaces.apply(spec)
            run(["ip", "netns", "exec", namespace(spec.id), "nft", "-f", "-"], input=render(ports))

    def plug(self, net_id: int, port: Port, guest_pid: int, slot: int) -> str:
        """Give the guest whose PID 1 is ``guest_pid`` its interface on the network (replacing a port the server
        had there before, from an earlier boot); returns the interface's name in the guest. The guest may hold
        the preferred name already (a live attach after a detach): the next free one is taken."""
        ns = namespace(net_id)
        with self._lock:
            self.unplug(net_id, port.server_id)
            for candidate in range(slot, MAX_SLOTS):
                # On the bridge and up from the start: the guest's first DHCP request must not meet a port still down.
                made = run(["ip", "-n", ns, "link", "add", port.name, "master", SWITCH, "up", "mtu", str(MTU), "type",
                            "veth", "peer", "name", guest_ifname(candidate), "address", port.mac, "mtu", str(MTU),
                            "netns", str(guest_pid)], check=False)
                if made.returncode == 0:
                    return guest_ifname(candidate)
                if "File exists" not in made.stderr or self._present(ns, port.name):
                    raise HostCommandError(f"could not give server {port.server_id} its interface on network "
                                           f"{net_id}: {made.stderr.strip()}")
            raise HostCommandError(f"server {port.server_id} holds every interface name from {guest_ifname(slot)} to "
                                   f"{guest_ifname(MAX_SLOTS - 1)}: none is free for network {net_id}")

    def unplug(self, net_id: int, server_id: int) -> None:
        """Remove the server's interface on the network (both ends of the pair); nothing when it has none."""
        ns = namespace(net_id)
        name = f"{PORT_PREFIX}{server_id}"
        with self._lock:
            if self._present(ns, name):
                run(["ip", "-n", ns, "link", "del", name], check=False)

    @staticmethod
    def _present(ns: str, name: str) -> bool:
        shown = run(["ip", "-n", ns, "-j", "link", "show", "dev", name], check=False)
        return shown.returncode == 0 and bool(json.loads(shown.stdout or "[]"))

    def remove(self, net_id: int) -> None:
        with self._lock:
            self.namespaces.remove(net_id)

    def sweep(self) -> None:
        with self._lock:
            self.namespaces.sweep()
