"""The lifecycle of servers' machines, on top of the records (``records``).

A server's disk is a clone of its image; its machine boots from that disk, told on its init's command line
where cloud-init finds its data (the metadata service, which answers each guest on its own listener), with its
DHCP lease reserved and its bridge port pinned to its identity; deleting it stops the machine, removes the disk
and the host's firewall rules for it. What the API checks before any of this is in ``api/``; the whole cloud's
resume, stop and reset in ``cloud``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import APIError
from ..guests.bridgefilter import Identity, Ports, mac
from ..guests.limits import Limits
from ..guests.machines import Machine
from ..guests.netlinks import PrivateLinks
from ..host.archimage import image_directory
from ..host.dhcp import Dhcp
from ..host.hostcmd import HostCommandError
from ..host.storage import Storage
from ..metadata.bootargs import IFUPDOWN_INTERFACE, INTERFACE, boot_args
from ..metadata.service import MetadataService
from ..paths import LINK_LOCAL_PREFIX, MACHINE_PREFIX, Layout
from . import catalog, primaryips
from .architectures import Architectures
from .faults import Faults
from .networks import PrivateNetworks
from .records import ActionFailed, Records

log = logging.getLogger("localcloud")

BOOT_TIMEOUT = 60


class ServerLifecycle(Records):
    def __init__(self, layout: Layout, storage: Storage, faults: Faults, *,
                 filter_guests: Callable[[dict[str, list[dict]]], None] | None = None, ports: Ports | None = None,
                 links: PrivateLinks | None = None, metadata: MetadataService | None = None,
                 dhcp: Dhcp | None = None, architectures: Architectures | None = None):
        """``filter_guests`` enforces attached firewalls on the host (``hostfirewall.enforce``), ``ports`` pins
        each machine's bridge port to its server's identity, ``links`` makes private networks and the guests'
        interfaces on them, ``metadata`` answers guests at 169.254.169.254, ``dhcp`` hands out their IPv4; without
        them firewalls and networks are only records and no guest gets an address (tests of the API in process).
        ``architectures``: what this host runs (everything, in process)."""
        super().__init__(layout, faults, architectures)
        self.storage = storage
        self.filter_guests = filter_guests
        self.ports = ports
        self.networks = PrivateNetworks(self, links)
        self.metadata = metadata
        self.dhcp = dhcp
        self.machines: dict[int, Machine] = {}
        self.closing = False
        self._leases = threading.Lock()  # one DHCP reservation writer at a time, each with the records of its moment

    def disk(self, server: dict) -> Path:
        return self.layout.disks / str(server["id"])

    def image_root(self, image: dict) -> Path:
        if image["type"] == "system":
            if image["architecture"] == "arm":
                self.architectures.ensure_arm_image()  # built at its first use: the create action waits
            path = self.layout.base_images / image_directory(image["name"], image["architecture"])
            if not (path / "etc/os-release").exists():
                raise ActionFailed("action_failed", f"system image {image['name']} is not built; run `invoke cloud-up`")
            return path
        return self.layout.snapshots / str(image["id"])

    def identity(self, server: dict) -> Identity:
        """What the server's port may carry; a server without IPv4 of its own gets a link-local address here."""
        if not server.get("address") and not server.get("link_local"):
            used = {s.get("link_local") for s in self.store["servers"].values()}
            server["link_local"] = next(a for a in (f"{LINK_LOCAL_PREFIX}.{n}" for n in range(10, 250))
                                        if a not in used)
        return Identity(mac(server["id"]), server.get("address") or server["link_local"],
                        public=bool(server.get("address")), ipv6=server.get("ipv6"))

    def metadata_of(self, sid: int) -> tuple[dict, tuple[str, str]] | None:
        """What the metadata service answers from: the server's record (its private networks as Hetzner's
        metadata lists them) and its (availability zone, region)."""
        with self.store.lock:
            server = self.store["servers"].get(sid)
            if server is None:
                return None
            view = {**server, "private_net": self.networks.metadata(server)}
        zone = (str(catalog.DATACENTER_BY_LOCATION[server["location"]]["name"]),
                str(catalog.LOCATION_BY_NAME[server["location"]]["network_zone"]))
        return view, zone

    def reserve_leases(self) -> None:
        """DHCP hands every server the IPv4 its port is pinned to, and nothing to anyone else."""
        if self.dhcp is None:
            return
        # Servers made at once: one writer at a time, in the order they read the records (the newest last). Lock
        # order: the store, then the leases; the store is not held while dnsmasq is told.
        with self.store.lock:
            leases: dict[str, tuple[str, str]] = {}
            for s in self.store["servers"].values():
                who = self.identity(s)
                leases[who.mac] = (who.ipv4 or "", s["name"])
            self._leases.acquire()
        try:
            self.dhcp.reserve(leases)
        finally:
            self._leases.release()

    def _plug(self, machine: Machine, server: dict) -> None:
        """Right after nspawn made the machine's port: its metadata listener, its MAC and the port's pin."""
        if self.ports is None:
            return
        port = self.metadata.open(machine.name, server["id"]) if self.metadata else 0
        self.ports.open(machine.name, self.identity(server), port, lambda: machine.running, machine.init_pid,
                        machine.emulated)

    def machine(self, server: dict) -> Machine:
        sid = server["id"]
        if sid not in self.machines:
            def on_exit(sid: int = sid) -> None:
                if self.ports:
                    self.ports.close(f"{MACHINE_PREFIX}{sid}")
                if self.metadata:
                    self.metadata.close(f"{MACHINE_PREFIX}{sid}")
                with self.store.lock:
                    s = self.store["servers"].get(sid)
                    if s and s["status"] != "deleting":
                        s["status"] = "off"
                        if not self.closing:  # cloud-down keeps the power state for the next cloud-up
                            s["power"] = "off"
                        self.store.save()
            stype = catalog.SERVER_TYPE_BY_NAME[server["server_type"]]
            self.machines[sid] = Machine(f"{MACHINE_PREFIX}{sid}", self.disk(server), server["name"],
                                         self.layout.machine_logs / f"{sid}.log", on_exit, Limits.of_type(stype),
                                         emulated=stype["architecture"] == "arm")
            def spawned(m: Machine, s: dict = server) -> None:
                self._plug(m, s)
                self.networks.plug(s, m)
            interface = IFUPDOWN_INTERFACE if stype["architecture"] == "arm" else INTERFACE  # archimage
            self.machines[sid].boot_args = lambda s=server: boot_args(s, interface)  # type: ignore[misc]
            self.machines[sid].on_spawn = spawned
        return self.machines[sid]

    def boot(self, server: dict, wait: bool = False) -> None:
        """Power the machine on; with ``wait`` return once its systemd runs (else in the background)."""
        machine = self.machine(server)
        server["power"] = "on"
        self.storage.limit(self.disk(server), machine.limits.disk_bytes)  # a rebuilt disk is a new one
        self.reserve_leases()
        machine.start()
        if wait:
            self._mark_running(server, machine)
            return

        def background() -> None:
            try:
                self._mark_running(server, machine)
            except ActionFailed as exc:
                log.error("server %s: %s", server["id"], exc)
                machine.poweroff()

        threading.Thread(target=background, daemon=True).start()

    def _mark_running(self, server: dict, machine: Machine) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not machine.booted():
            if not machine.running or time.monotonic() > deadline:
                raise ActionFailed("action_failed", f"machine did not boot; see {machine.log_path}")
            time.sleep(0.05)
        server["status"] = "running"
        self.store.save()

    def drop_server(self, server: dict) -> None:
        sid = server["id"]
        m = self.machines.pop(sid, None)
        if m:
            m.poweroff()  # also when between guests: it stops the watcher from starting another
        self.storage.delete(self.disk(server))
        with self.store.lock:
            for fw in self.store["firewalls"].values():
                if sid in fw.get("applied_to", []):
                    fw["applied_to"].remove(sid)
            primaryips.release(self.store, server)
            self.store["servers"].pop(sid, None)
            self.store.save()
        self.networks.apply(e["network"] for e in server["private_net"])
        if server["firewalls"]:
            try:
                self.enforce_firewalls()
            except APIError as exc:  # the server is gone either way; a stale rule only drops traffic
                log.error("%s", exc.message)

    def enforce_firewalls(self) -> None:
        """Bring the host's filtering in line with the firewalls attached to servers now."""
        if self.filter_guests is None:
            return
        with self.store.lock:
            guests = {address: [r for fid in s["firewalls"] for r in self.store["firewalls"][fid]["rules"]
                                if r["direction"] == "in"]
                      for s in self.store["servers"].values() if s["firewalls"]
                      for address in (s.get("address"), s.get("ipv6")) if address}
            try:
                self.filter_guests(guests)
            except HostCommandError as exc:
                raise APIError("server_error", f"the local cloud could not enforce firewalls on this host: {exc}",
                               status=500) from None
