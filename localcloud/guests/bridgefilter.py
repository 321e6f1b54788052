"""Each guest's port on the bridge carries only that guest's identity: its MAC, its IPv4 and its IPv6 addresses.

A guest's root holds CAP_NET_ADMIN in its own network namespace: it can change its MAC, add any address and
answer ARP or neighbour discovery for another guest or for the host's bridge address. So the pin sits on the
host's side of its port, ``vb-<machine>`` (the host end of the veth systemd-nspawn makes for ``--network-bridge``;
nspawn shortens a long name with a hash and keeps the full one as an altname), in an nftables ``bridge`` table of
this local cloud:

- from a pinned port, a frame passes only with the guest's MAC as its source; ARP only for the guest's own MAC and
  IPv4; IPv4 only from its own address (a server without IPv4 of its own: DHCP, and its link-local address to the
  metadata service only); IPv6 only from its /64 and its link-local address (EUI-64 of its MAC), neighbour
  advertisements only for those, duplicate address detection from ``::``; router advertisements and redirects
  never; every other kind of frame is dropped. Its requests to the metadata service get its mark, which decides
  the listener they reach (``redirect``);
- to a pinned port, a frame passes only for the guest's MAC, broadcast or IPv6 multicast (neighbour discovery), so
  a guest never sees another's unicast, not even when the bridge floods a frame it has no forwarding entry for;
  the host sends it no redirects (traffic between guests stays routed through the host);
- a port of this cloud's machines that is not pinned (yet) passes nothing either way: nspawn attaches it to
  the bridge before the pin can name it.

Each server has a fixed MAC (``96:00:`` and its id, shaped like Hetzner's), set on the guest's interface from the
host, in its network namespace, right after nspawn creates it and before its port is pinned: nothing is written
into the guest's disk. Its port is pinned when its machine starts, unpinned when it stops. The interface does no
IPv6 duplicate address detection (``accept_dad`` 0, set the same way): the cloud gives each server addresses no
other has, and while DAD runs (1-2 s from the interface's start) they are tentative, so a connection the guest opens
then leaves from ``::1``, which its pin drops, for the connection's life. Hetzner's images wait for DAD before
network-online; these guests' network-online waits for nothing, and an IPv6-only guest's first boot reached the
host's IPv6 address that early (its Tailscale enrolment timed out).

Traffic between guests is routed through the host (a /32 and a /64 per server, as on Hetzner), where
``hostfirewall`` enforces the attached firewalls statefully; a guest that sends to another's MAC directly still
crosses the bridge, and br_netfilter hands bridged IPv4 and IPv6 to the same hooks (``filter_bridged_traffic``,
for this bridge alone). (The ``bridge`` family has no connection tracking without nf_conntrack_bridge, so a
stateful firewall cannot live in this table.)
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..host.hostcmd import HostCommandError, run
from ..host.hostnet import checksum_in_software
from ..paths import BRIDGE, MACHINE_PREFIX, METADATA_ADDRESS, PORTS_TABLE
from . import redirect

log = logging.getLogger("localcloud")

NSPAWN_KEEPS = 11  # characters of "vb-<machine>" nspawn keeps when it shortens the name (IFNAMSIZ - 5)
PORT_TIMEOUT = 10  # seconds for nspawn to attach a machine's port after it started


@dataclass(frozen=True)
class Identity:
    """What a server's port may carry."""

    mac: str
    ipv4: str | None  # its own IPv4, or the link-local one it reaches the metadata service from
    public: bool  # ipv4 is its own (else link-local: DHCP and the metadata service only)
    ipv6: str | None  # its /64, None without IPv6


@dataclass(frozen=True)
class Pin:
    port: str
    identity: Identity
    mark: int  # set on its requests to the metadata service
    metadata_port: int  # the listener redirect sends them to


def mac(server_id: int) -> str:
    """The server's MAC: locally administered, unicast, fixed for its life."""
    return "96:00:" + ":".join(f"{server_id >> shift & 0xFF:02x}" for shift in (24, 16, 8, 0))


def link_local(mac_address: str) -> ipaddress.IPv6Address:
    """The guest's IPv6 link-local address: EUI-64 of its MAC (what systemd-networkd and the kernel make)."""
    octets = bytes.fromhex(mac_address.replace(":", ""))
    eui = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui)


def _from_guest(name: str, pin: Pin) -> list[str]:
    who = pin.identity
    rules = [f"    ether saddr != {who.mac} drop",
             "    ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept"]
    if who.ipv4:
        rules += [f"    arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether {who.mac} "
                  f"arp saddr ip {who.ipv4} accept",
                  f"    ip saddr {who.ipv4} ip daddr {METADATA_ADDRESS} tcp dport 80 "
                  f"meta mark set {pin.mark:#x} accept",
                  f"    ip saddr {who.ipv4} udp sport 68 udp dport 67 accept"]
        if who.public:
            rules.append(f"    ip saddr {who.ipv4} accept")
    if who.ipv6:
        prefix, ll = ipaddress.IPv6Network(who.ipv6), link_local(who.mac)
        rules += ["    ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } accept",
                  "    icmpv6 type { nd-router-advert, nd-redirect } drop",
                  f"    icmpv6 type nd-neighbor-advert @th,64,64 {int(prefix.network_address) >> 64:#x} accept",
                  f"    icmpv6 type nd-neighbor-advert @th,64,128 {int(ll):#x} accept",
                  "    icmpv6 type nd-neighbor-advert drop",
                  f"    ip6 saddr {{ {prefix}, {ll} }} accept"]
    return [f"  chain from_{name} {{", *rules, "    drop", "  }"]


def render(pins: dict[str, Pin], table: str = PORTS_TABLE, port_prefix: str = f"vb-{MACHINE_PREFIX}") -> str:
    """The nft script for the pinned ports ``{machine: Pin}`` (replaces the whole table)."""
    chains = {name: re.sub(r"\W", "_", name) for name in pins}
    script = [f"table bridge {table}", f"delete table bridge {table}", f"table bridge {table} {{",
              "  chain from_guests {", "    type filter hook prerouting priority filter; policy accept;"]
    script += [f'    iifname "{pin.port}" jump from_{chains[name]}' for name, pin in sorted(pins.items())]
    script += [f'    iifname "{port_prefix}*" drop', "  }"]
    for hook in ("forward", "output"):
        script += [f"  chain to_guests_{hook} {{", f"    type filter hook {hook} priority filter; policy accept;"]
        if hook == "output":  # routed between guests by the host: no redirect sends them to each other directly
            script += [f'    oifname "{port_prefix}*" icmp type redirect drop',
                       f'    oifname "{port_prefix}*" icmpv6 type nd-redirect drop']
        script += [f'    oifname "{pin.port}" jump to_{chains[name]}' for name, pin in sorted(pins.items())]
        script += [f'    oifname "{port_prefix}*" drop', "  }"]
    for name, pin in sorted(pins.items()):
        script += _from_guest(chains[name], pin)
        script += [f"  chain to_{chains[name]} {{",
                   f"    ether daddr {{ {pin.identity.mac}, ff:ff:ff:ff:ff:ff }} accept",
                   "    ether daddr & ff:ff:00:00:00:00 == 33:33:00:00:00:00 accept",
                   "    drop", "  }"]
    script.append("}")
    return "\n".join(script) + "\n"


def filter_bridged_traffic() -> None:
    """Hand this bridge's guest-to-guest IPv4 and IPv6 to the host's IP hooks (br_netfilter), where the attached
    firewalls are enforced; the bridge's own setting, so other bridges on the host keep theirs."""
    if not Path("/proc/sys/net/bridge").exists():
        run(["modprobe", "br_netfilter"], check=False)
    run(["ip", "link", "set", "dev", BRIDGE, "type", "bridge", "nf_call_iptables", "1", "nf_call_ip6tables", "1"])
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
            run(["nft", "-f", "-"], input=render(self.pins) + redirect.render([]))

    def open(self, machine: str, identity: Identity, metadata_port: int, alive: Callable[[], bool],
             netns_pid: Callable[[], int | None], emulated: bool = False) -> None:
        """Give the guest of ``machine`` (just started) its MAC, then pin its port to ``identity``; until then it
        passes nothing, and it stays so when its port does not appear or nft refuses (logged). An ``emulated``
        guest's port gets complete checksums (``hostnet.checksum_in_software``)."""
        deadline = time.monotonic() + PORT_TIMEOUT
        while (port := _port(machine)) is None or (pid := netns_pid()) is None:
            if not alive() or time.monotonic() > deadline:
                log.error("machine %s: its port on %s did not appear; it stays cut off", machine, BRIDGE)
                return
            time.sleep(0.02)
        set_mac = run(["nsenter", f"--target={pid}", "--net", "ip", "link", "set", "dev", "host0", "address",
                       identity.mac], check=False)
        if set_mac.returncode != 0:
            log.error("machine %s: its MAC could not be set (%s); it stays cut off", machine, set_mac.stderr.strip())
            return
        no_dad = run(["nsenter", f"--target={pid}", "--net", "sysctl", "-qw", "net.ipv6.conf.host0.accept_dad=0"],
                     check=False)
        if no_dad.returncode != 0:
            log.warning("machine %s: its IPv6 addresses stay tentative for a while after its start (%s)", machine,
                        no_dad.stderr.strip())
        if emulated:
            try:
                checksum_in_software(port)
            except OSError as exc:
                log.error("machine %s: its port's checksums stay offloaded (%s): its DHCP will fail", machine, exc)
        with self._lock:
            self.pins[machine] = Pin(port, identity, redirect.MARK_BASE + _slot(machine), metadata_port)
            self._apply()
        forget_neighbours(identity)

    def close(self, machine: str) -> None:
        with self._lock:
            if self.pins.pop(machine, None):
                self._apply()

    def _apply(self) -> None:
        try:
            run(["nft", "-f", "-"], input=render(self.pins) + redirect.render(
                [(pin.mark, pin.metadata_port) for pin in self.pins.values()]))
        except HostCommandError as exc:
            log.error("the bridge's port pins were not updated, ports not pinned yet pass nothing: %s", exc)


def forget_neighbours(identity: Identity) -> None:
    """The host forgets the MAC it last saw on the guest's addresses: a server deleted a moment ago may have had them,
    and its entry (stale, not failed) sends the host's answers to that MAC, which no port takes, until its probes
    give up (~10 s: an IPv6-only guest's first connections to the host time out). A guest's IPv4 corrects the entry
    itself (its DHCP); its IPv6 sends no unsolicited advertisement."""
    for family, to in (("-4", identity.ipv4), ("-6", identity.ipv6)):
        if to:
            run(["ip", family, "neigh", "flush", "to", to, "dev", BRIDGE], check=False)


def _slot(machine: str) -> int:
    """A number of the machine's own (its server id's low bits: ids are consecutive), for its mark."""
    return int(machine.rsplit("-", 1)[1]) & 0xFFFF


def _port(machine: str) -> str | None:
    """The name of ``machine``'s port on this cloud's bridge, found by its full name (a shortened one's altname)."""
    shown = run(["ip", "-j", "link", "show", "dev", f"vb-{machine}"], check=False)
    links = json.loads(shown.stdout or "[]") if shown.returncode == 0 else []
    return next((link["ifname"] for link in links if link.get("master") == BRIDGE), None)
