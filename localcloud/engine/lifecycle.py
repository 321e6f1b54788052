"""The lifecycle of servers' machines, on top of the records (``records``).

A server's disk is a clone of its image; its machine boots from that disk with a seed that
cloud-init reads; deleting it stops the machine, removes the disk and the host's firewall rules
for it. What the API checks before any of this is in ``api/``; the whole cloud's resume, stop and
reset in ``cloud``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import APIError
from ..guests.bridgefilter import Ports
from ..guests.limits import Limits
from ..guests.machines import Machine, Seed
from ..host.hostcmd import HostCommandError
from ..host.storage import Storage
from ..paths import MACHINE_PREFIX, Layout
from . import catalog
from .faults import Faults
from .records import ActionFailed, Records

log = logging.getLogger("localcloud")

BOOT_TIMEOUT = 60


class ServerLifecycle(Records):
    def __init__(self, layout: Layout, storage: Storage, faults: Faults, *,
                 filter_guests: Callable[[dict[str, list[dict]]], None] | None = None, ports: Ports | None = None):
        """``filter_guests`` enforces attached firewalls on the host (``hostfirewall.enforce``), ``ports`` pins
        each machine's bridge port to its server's identity; without them firewalls are only records and
        ports open (tests of the API in process)."""
        super().__init__(layout, faults)
        self.storage = storage
        self.filter_guests = filter_guests
        self.ports = ports
        self.machines: dict[int, Machine] = {}
        self.closing = False

    def disk(self, server: dict) -> Path:
        return self.layout.disks / str(server["id"])

    def image_root(self, image: dict) -> Path:
        if image["type"] == "system":
            path = self.layout.base_images / image["name"]
            if not (path / "etc/os-release").exists():
                raise ActionFailed("action_failed", f"system image {image['name']} is not built; run `invoke cloud-up`")
            return path
        return self.layout.snapshots / str(image["id"])

    def write_seed(self, server: dict) -> None:
        Seed(instance_id=f"i-{server['id']}-{server['instance']}", hostname=server["name"],
             address=server["address"], ssh_keys=server["ssh_keys"], user_data=server["user_data"]
             ).write(self.disk(server))

    def machine(self, server: dict) -> Machine:
        sid = server["id"]
        if sid not in self.machines:
            def on_exit(sid: int = sid) -> None:
                if self.ports:
                    self.ports.close(f"{MACHINE_PREFIX}{sid}")
                with self.store.lock:
                    s = self.store["servers"].get(sid)
                    if s and s["status"] != "deleting":
                        s["status"] = "off"
                        if not self.closing:  # cloud-down keeps the power state for the next cloud-up
                            s["power"] = "off"
                        self.store.save()
            self.machines[sid] = Machine(f"{MACHINE_PREFIX}{sid}", self.disk(server), server["name"],
                                         self.layout.machine_logs / f"{sid}.log", on_exit,
                                         Limits.of_type(catalog.SERVER_TYPE_BY_NAME[server["server_type"]]))
            if self.ports:
                ports = self.ports
                self.machines[sid].on_spawn = lambda m, s=server: ports.open(m.name, s["id"], s["address"],
                                                                             lambda: m.running)
        return self.machines[sid]

    def boot(self, server: dict, wait: bool = False) -> None:
        """Power the machine on; with ``wait`` return once its systemd runs (else in the background)."""
        machine = self.machine(server)
        server["power"] = "on"
        self.storage.limit(self.disk(server), machine.limits.disk_bytes)  # a rebuilt disk is a new one
        if self.ports and not machine.running:
            self.ports.prepare(self.disk(server), server["id"])
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
            self.store["servers"].pop(sid, None)
            self.store.save()
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
            guests = {s["address"]: [r for fid in s["firewalls"] for r in self.store["firewalls"][fid]["rules"]
                                     if r["direction"] == "in"]
                      for s in self.store["servers"].values() if s["firewalls"]}
            try:
                self.filter_guests(guests)
            except HostCommandError as exc:
                raise APIError("server_error", f"the local cloud could not enforce firewalls on this host: {exc}",
                               status=500) from None
