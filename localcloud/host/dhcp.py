"""Guests get their IPv4 by DHCP on the bridge, as on Hetzner: dnsmasq from Debian, one per local cloud.

Hetzner's DHCP hands a server its public IPv4 as a /32 with the gateway on-link (a host route to the gateway and
the default route through it): so does this one, with the host's bridge address as gateway and resolver. A server
without IPv4 of its own gets an address of the link-local /24 (``LINK_LOCAL_PREFIX``) with a route to the metadata
service only, and nothing else of IPv4 passes its port (``guests.bridgefilter``). Only the reserved MACs get a
lease (``static`` ranges); each server's reservation is a line of the hosts file, which dnsmasq reads again on
SIGHUP; a reservation that goes (a deleted server's) restarts it, since dnsmasq keeps the lease it handed out
and would not give that address to the next server's MAC. The same dnsmasq is the provider's resolver that DHCP and
the system image name (Hetzner's are 185.12.64.1/2): with no upstream (this host has no internet) it resolves no
name, and says so at once (REFUSED; NXDOMAIN for private addresses' reverse names), where a resolver that does not
answer holds every lookup for its timeouts (fail2ban's reverse lookup alone held a host's shutdown ~10 s). It runs on
this bridge only (bound to it, so the local clouds of one host each run their own), drops root after it starts,
keeps no lease file, and stops with the API process. IPv6 is not handed out here: a /64 per server on a shared
bridge is not what one router advertisement can say (see ``metadata.bootargs``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from ..paths import BRIDGE, HOST_ADDRESS, LINK_LOCAL_PREFIX, METADATA_ADDRESS, SUBNET_PREFIX
from ..state.durable import write_atomic

log = logging.getLogger("localcloud")

RUN_DIR = Path("/run/imagekit-localcloud") / BRIDGE  # readable by dnsmasq once it dropped root
LEASE = "12h"
READY_TIMEOUT = 5.0  # seconds for a started dnsmasq to handle SIGHUP


def options(hosts_file: Path) -> list[str]:
    """dnsmasq's command line for this bridge."""
    gateway, ll_gateway = HOST_ADDRESS, f"{LINK_LOCAL_PREFIX}.1"
    return [
        "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bogus-priv",
        f"--interface={BRIDGE}", "--bind-interfaces", "--except-interface=lo", "--leasefile-ro",
        "--dhcp-authoritative", f"--dhcp-hostsfile={hosts_file}", "--log-facility=-",
        f"--dhcp-range=set:public,{SUBNET_PREFIX}.0,static,255.255.255.0,{LEASE}",
        f"--dhcp-range=set:linklocal,{LINK_LOCAL_PREFIX}.0,static,255.255.255.0,{LEASE}",
        "--dhcp-option=tag:public,option:netmask,255.255.255.255",
        f"--dhcp-option=tag:public,option:router,{gateway}",
        f"--dhcp-option=tag:public,option:classless-static-route,{gateway}/32,0.0.0.0,0.0.0.0/0,{gateway}",
        f"--dhcp-option=tag:public,option:dns-server,{gateway}",
        "--dhcp-option=tag:linklocal,option:netmask,255.255.255.255",
        "--dhcp-option=tag:linklocal,option:router",
        "--dhcp-option=tag:linklocal,option:dns-server",
        f"--dhcp-option=tag:linklocal,option:classless-static-route,{ll_gateway}/32,0.0.0.0,"
        f"{METADATA_ADDRESS}/32,{ll_gateway}",
    ]


def catches_sighup(pid: int) -> bool:
    """Whether the process has installed its SIGHUP handler (its ``SigCgt`` mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGHUP - 1)))


def hosts_line(mac: str, address: str, hostname: str) -> str:
    return f"{mac},{address},{hostname},{LEASE}"


class Dhcp:
    """The bridge's dnsmasq and its reservations (``{mac: (address, hostname)}``)."""

    def __init__(self, run_dir: Path = RUN_DIR):
        self.run_dir = run_dir
        self.hosts_file = run_dir / "dhcp-hosts"
        self.proc: subprocess.Popen | None = None
        self.hosts: dict[str, tuple[str, str]] = {}
        self.lock = threading.Lock()  # the hosts file has one temporary name: one writer at a time

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        self._write()
        self._stop_stale()
        self._run()

    def _run(self) -> None:
        self.proc = subprocess.Popen(["dnsmasq", *options(self.hosts_file), f"--pid-file={self.run_dir}/dnsmasq.pid"],
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.info("dnsmasq for DHCP on %s started (pid %s)", BRIDGE, self.proc.pid)
        # A SIGHUP (the next reservation) before dnsmasq handles it would end it: SIGHUP's default is to terminate.
        deadline = time.monotonic() + READY_TIMEOUT
        while self.proc.poll() is None and not catches_sighup(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def reserve(self, hosts: dict[str, tuple[str, str]]) -> None:
        """The leases dnsmasq hands out from now on: exactly ``hosts``."""
        with self.lock:
            self._reserve(hosts)

    def _reserve(self, hosts: dict[str, tuple[str, str]]) -> None:
        gone = any(hosts.get(mac, (None,))[0] != address for mac, (address, _) in self.hosts.items())
        self.hosts = dict(hosts)
        self._write()
        if self.proc is None:
            return
        if self.proc.poll() is not None:  # it died (its exit is in the log): DHCP must not stay down
            log.warning("dnsmasq for DHCP on %s had exited (status %s): starting it again", BRIDGE,
                        self.proc.returncode)
            self._run()
            return
        if gone:
            self.stop()
            self._run()
        else:
            self.proc.send_signal(signal.SIGHUP)

    def _write(self) -> None:
        text = "".join(hosts_line(mac, address, name) + "\n" for mac, (address, name) in sorted(self.hosts.items()))
        write_atomic(self.hosts_file, text, 0o644)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def _stop_stale(self) -> None:
        """The dnsmasq an earlier run of this local cloud left (its pid file, and only if it is ours)."""
        try:
            pid = int((self.run_dir / "dnsmasq.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if cmdline.startswith(b"dnsmasq\0") and f"--dhcp-hostsfile={self.hosts_file}".encode() in cmdline:
            log.warning("stopping the dnsmasq (pid %s) an earlier run of this local cloud left", pid)
            os.kill(pid, signal.SIGTERM)
