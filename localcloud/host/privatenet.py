"""Each private network's host side, in a network namespace of its own: its switch, its gateway, its routes and
its DHCP server, none of them in the host's own network namespace.

A network's range is the user's choice (10.0.0.0/16 may well be the operator's office network), so nothing of
it may reach the host's addresses or routes. Each network gets a namespace (``localcloud-<bridge>-net<id>``)
holding a bridge ``br0`` with the network's first address as gateway (``10.0.0.1/16``, as on Hetzner), IP
forwarding between its guests (the gateway routes guest to guest, as Hetzner's layer-3 networks do, and
towards the gateways of the network's routes), no redirects (guests keep talking through the gateway), no IPv6,
and dnsmasq from Debian handing each attached server its address: a /32 with a host route to the gateway and
a route to the whole range through it (DHCP option 121), no default route, no DNS, as Hetzner's DHCP does.
Guests' interfaces are veth pairs from this namespace into theirs (``guests/netlinks``).

Deleting the namespace (after its dnsmasq) removes the bridge and every guest interface on it; a start
sweeps the namespaces an earlier run of this local cloud left (``sweep``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import BRIDGE, Layout
from .hostcmd import run

log = logging.getLogger("localcloud")

NETNS_PREFIX = f"localcloud-{BRIDGE}-net"
SWITCH = "br0"  # the network's bridge, inside its namespace
LEASE = "1h"
SYSCTLS = ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
           "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


@dataclass(frozen=True)
class NetworkSpec:
    """What one network's namespace holds: its range, routes and the addresses its DHCP hands out."""

    id: int
    ip_range: str
    routes: Sequence[tuple[str, str]] = ()  # (destination, gateway)
    hosts: Sequence[tuple[str, str]] = field(default=())  # (MAC, IPv4) of each attached server

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.ip_range).hosts()))


def namespace(net_id: int) -> str:
    return f"{NETNS_PREFIX}{net_id}"


def dnsmasq_config(spec: NetworkSpec, leases: Path, log_file: Path) -> str:
    """dnsmasq's whole configuration: static leases only (each attached server's MAC and address)."""
    net = ipaddress.ip_network(spec.ip_range)
    # quiet-dhcp: routine leases are not logged (a guest renewing in a loop must not fill the disk), errors are.
    lines = ["port=0", f"interface={SWITCH}", "bind-interfaces", "dhcp-authoritative", "pid-file=", "quiet-dhcp",
             f"dhcp-range={net.network_address},static,{LEASE}",
             "dhcp-option=option:netmask,255.255.255.255", "dhcp-option=option:router",
             "dhcp-option=option:dns-server", f"dhcp-option=121,{spec.gateway}/32,0.0.0.0,{net},{spec.gateway}",
             f"dhcp-leasefile={leases}", f"log-facility={log_file}"]
    lines += [f"dhcp-host={mac},{ip}" for mac, ip in sorted(spec.hosts)]
    return "\n".join(lines) + "\n"


class Namespaces:
    """The namespaces of this local cloud's networks and their DHCP servers (children of the API process)."""

    def __init__(self, layout: Layout):
        self.dir = layout.private_networks
        self.dhcp: dict[int, subprocess.Popen] = {}
        self._lock = threading.RLock()

    def sweep(self) -> None:
        """Remove every namespace of this local cloud's networks (and what runs in it): the host as before."""
        with self._lock:
            for net_id in list(self.dhcp):
                self.remove(net_id)
            for name in existing():
                _delete(name)

    def apply(self, spec: NetworkSpec) -> None:
        """Make the network's namespace hold ``spec``: created when missing, its gateway and routes set, dnsmasq
        (re)started when its configuration changed or it is not running."""
        with self._lock:
            ns = namespace(spec.id)
            if ns not in existing():
                _create(ns)
            gateway = f"{spec.gateway}/{ipaddress.ip_network(spec.ip_range).prefixlen}"
            if f" {gateway} " not in run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", SWITCH]).stdout:
                run(["ip", "-n", ns, "addr", "flush", "dev", SWITCH])
                run(["ip", "-n", ns, "addr", "add", gateway, "dev", SWITCH])
            run(["ip", "-n", ns, "route", "flush", "proto", "static"])
            for destination, via in spec.routes:
                run(["ip", "-n", ns, "route", "replace", destination, "via", via, "dev", SWITCH, "proto", "static"])
            self._dhcp(spec)

    def _dhcp(self, spec: NetworkSpec) -> None:
        home = self.dir / str(spec.id)
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "dnsmasq.conf"
        text = dnsmasq_config(spec, home / "leases", home / "dnsmasq.log")
        proc = self.dhcp.get(spec.id)
        if proc and proc.poll() is None and conf.exists() and conf.read_text() == text:
            return
        self._stop_dhcp(spec.id)
        conf.write_text(text)
        # dnsmasq reads its configuration as root, then runs as its own user: a change means a restart, which its
        # lease file outlives.
        self.dhcp[spec.id] = subprocess.Popen(
            ["ip", "netns", "exec", namespace(spec.id), "dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _stop_dhcp(self, net_id: int) -> None:
        proc = self.dhcp.pop(net_id, None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def remove(self, net_id: int) -> None:
        """Remove the network's namespace: its dnsmasq, bridge and every guest interface on it."""
        with self._lock:
            self._stop_dhcp(net_id)
            _delete(namespace(net_id))
            home = self.dir / str(net_id)
            for name in ("dnsmasq.conf", "leases", "dnsmasq.log"):
                (home / name).unlink(missing_ok=True)
            if home.exists():
                home.rmdir()


def existing() -> list[str]:
    """The namespaces of this local cloud's networks on the host now."""
    listed = run(["ip", "netns", "list"]).stdout
    pattern = re.compile(rf"{re.escape(NETNS_PREFIX)}\d+")
    return [name for name in (line.split()[0] for line in listed.splitlines() if line.strip())
            if pattern.fullmatch(name)]


def _create(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", *SYSCTLS])
        run(["ip", "-n", ns, "link", "add", SWITCH, "type", "bridge"])
        run(["ip", "-n", ns, "link", "set", SWITCH, "up"])
    except BaseException:
        _delete(ns)
        raise


def _delete(ns: str) -> None:
    """Kill what still runs in ``ns`` (a dnsmasq a crashed run left), then delete it."""
    pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
    if pids:
        run(["kill", "-KILL", *pids], check=False)
    if run(["ip", "netns", "del", ns], check=False).returncode != 0 and ns in existing():
        log.error("network namespace %s could not be deleted; remove it with `ip netns del %s`", ns, ns)
