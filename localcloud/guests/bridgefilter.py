"""Each guest's port on the bridge carries only that guest's identity: its MAC and its IPv4 address.

A guest's root holds CAP_NET_ADMIN in its own network namespace: it can change its MAC, add any address and
answer ARP for another guest or for the host's bridge address. So the pin sits on the host's side of its
port, ``vb-<machine>`` (the host end of the veth systemd-nspawn makes for ``--network-bridge``; nspawn
shortens a long name with a hash and keeps the full one as an altname), in an nftables ``bridge`` table of
this local cloud:

- from a pinned port, a frame passes only with the guest's MAC as its source, ARP only for the guest's own
  MAC and address, IPv4 only from its own address; IPv6 and every other kind of frame are dropped (the issue
  that gives guests IPv6 pins their /64 and link-local addresses here, ND included);
- to a pinned port, a frame passes only for the guest's MAC or broadcast, so a guest never sees another's
  unicast, not even when the bridge floods a frame it has no forwarding entry for;
- a port of this cloud's machines that is not pinned (yet) passes nothing either way: nspawn attaches it to
  the bridge before the pin can name it.

Each server has a fixed MAC (``96:00:`` and its id, shaped like Hetzner's), written into its disk as a
systemd-networkd drop-in before every boot; its port is pinned when its machine starts, unpinned when it stops.

Guest-to-guest traffic crosses the bridge without the host's IP hooks, where ``hostfirewall`` enforces the
attached firewalls statefully; br_netfilter hands bridged IPv4 to those hooks, and ``filter_bridged_traffic``
turns that on for this bridge alone. (The ``bridge`` family has no connection tracking without
nf_conntrack_bridge, so a stateful firewall cannot live in this table.)
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..host.hostcmd import HostCommandError, run
from ..paths import BRIDGE, MACHINE_PREFIX, PORTS_TABLE
from .guestfs import write_files

log = logging.getLogger("localcloud")

NSPAWN_KEEPS = 11  # characters of "vb-<machine>" nspawn keeps when it shortens the name (IFNAMSIZ - 5)
PORT_TIMEOUT = 10  # seconds for nspawn to attach a machine's port after it started
MAC_DROPIN = "etc/systemd/network/10-cloud-init-host0.network.d"  # cloud-init's file for host0 (see baseimage)


@dataclass(frozen=True)
class Pin:
    port: str
    mac: str
    ipv4: str


def mac(server_id: int) -> str:
    """The server's MAC: locally administered, unicast, fixed for its life."""
    return "96:00:" + ":".join(f"{server_id >> shift & 0xFF:02x}" for shift in (24, 16, 8, 0))


def render(pins: dict[str, Pin], table: str = PORTS_TABLE, port_prefix: str = f"vb-{MACHINE_PREFIX}") -> str:
    """The nft script for the pinned ports ``{machine: Pin}`` (replaces the whole table)."""
    chains = {name: re.sub(r"\W", "_", name) for name in pins}
    script = [f"table bridge {table}", f"delete table bridge {table}", f"table bridge {table} {{",
              "  chain from_guests {", "    type filter hook prerouting priority filter; policy accept;"]
    script += [f'    iifname "{pin.port}" jump from_{chains[name]}' for name, pin in sorted(pins.items())]
    script += [f'    iifname "{port_prefix}*" drop', "  }"]
    for hook in ("forward", "output"):
        script += [f"  chain to_guests_{hook} {{", f"    type filter hook {hook} priority filter; policy accept;"]
        script += [f'    oifname "{pin.port}" jump to_{chains[name]}' for name, pin in sorted(pins.items())]
        script += [f'    oifname "{port_prefix}*" drop', "  }"]
    for name, pin in sorted(pins.items()):
        script += [f"  chain from_{chains[name]} {{",
                   f"    ether saddr != {pin.mac} drop",
                   f"    arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether {pin.mac} "
                   f"arp saddr ip {pin.ipv4} accept",
                   f"    ip saddr {pin.ipv4} accept",
                   "    drop", "  }",
                   f"  chain to_{chains[name]} {{", f"    ether daddr {{ {pin.mac}, ff:ff:ff:ff:ff:ff }} accept",
                   "    drop", "  }"]
    script.append("}")
    return "\n".join(script) + "\n"


def filter_bridged_traffic() -> None:
    """Hand this bridge's guest-to-guest IPv4 to the host's IP hooks (br_netfilter), where the attached
    firewalls are enforced; the bridge's own setting, so other bridges on the host keep theirs."""
    if not Path("/proc/sys/net/bridge").exists():
        run(["modprobe", "br_netfilter"], check=False)
    run(["ip", "link", "set", "dev", BRIDGE, "type", "bridge", "nf_call_iptables", "1"])
    if not Path("/proc/sys/net/bridge").exists():
        log.warning("br_netfilter is not available: firewalls do not filter traffic between guests on %s", BRIDGE)


class Ports:
    """The pins of this local cloud's running machines, kept in its nftables bridge table."""

    def __init__(self):
        if len(f"vb-{MACHINE_PREFIX}") > NSPAWN_KEEPS:
            raise ValueError(f"the bridge name {BRIDGE!r} is too long for the local cloud to tell its machines' "
                             "ports from other bridges' ones: use a name of at most 7 characters")
        self.pins: dict[str, Pin] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """No port pinned: what a start finds left by an earlier run goes, and every port is closed (a start
        fails when nft refuses: guests must not boot onto an open bridge)."""
        with self._lock:
            self.pins.clear()
            run(["nft", "-f", "-"], input=render(self.pins))

    @staticmethod
    def prepare(disk: Path, server_id: int) -> None:
        """Write the server's MAC into its (powered-off) disk, for systemd-networkd to set on host0."""
        write_files(disk, MAC_DROPIN, {"50-localcloud-mac.conf": (f"[Link]\nMACAddress={mac(server_id)}\n", 0o644)})

    def open(self, machine: str, server_id: int, ipv4: str, alive: Callable[[], bool]) -> None:
        """Pin the port of ``machine`` (just started) to the server's MAC and ``ipv4``; until then it passes
        nothing, and it stays so when its port does not appear or nft refuses (logged)."""
        deadline = time.monotonic() + PORT_TIMEOUT
        while (port := _port(machine)) is None:
            if not alive() or time.monotonic() > deadline:
                log.error("machine %s: its port on %s did not appear; it stays cut off", machine, BRIDGE)
                return
            time.sleep(0.02)
        with self._lock:
            self.pins[machine] = Pin(port, mac(server_id), ipv4)
            self._apply()

    def close(self, machine: str) -> None:
        with self._lock:
            if self.pins.pop(machine, None):
                self._apply()

    def _apply(self) -> None:
        try:
            run(["nft", "-f", "-"], input=render(self.pins))
        except HostCommandError as exc:
            log.error("the bridge's port pins were not updated, ports not pinned yet pass nothing: %s", exc)


def _port(machine: str) -> str | None:
    """The name of ``machine``'s port on this cloud's bridge, found by its full name (a shortened one's altname)."""
    shown = run(["ip", "-j", "link", "show", "dev", f"vb-{machine}"], check=False)
    links = json.loads(shown.stdout or "[]") if shown.returncode == 0 else []
    return next((link["ifname"] for link in links if link.get("master") == BRIDGE), None)
