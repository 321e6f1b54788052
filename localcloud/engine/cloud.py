"""The local cloud's engine as one object: records and actions (``records``), servers' machines
(``lifecycle``), and what happens to the whole cloud at once: resume after a restart, stop every
guest (cloud-down), reset (cloud-reset)."""

from __future__ import annotations

import logging
import time

from ..guests import cgroups
from ..guests.machines import kill_orphans
from ..paths import MACHINE_PREFIX
from ..state.store import now
from . import primaryips
from .lifecycle import ServerLifecycle

log = logging.getLogger("localcloud")


class Cloud(ServerLifecycle):
    def resume(self) -> None:
        """Reconcile after a restart: kill orphaned guests, boot servers that were running."""
        for pid in kill_orphans(MACHINE_PREFIX):
            log.warning("killed orphaned guest process %s left by an earlier run", pid)
        cgroups.sweep(MACHINE_PREFIX)
        with self.store.lock:
            for server in self.store["servers"].values():  # records from before networks and placement groups
                server.setdefault("private_net", [])
                server.setdefault("placement_group", None)
            self.networks.resume()
            primaryips.adopt(self.store)
            for action in self.store["actions"].values():
                if action["status"] == "running":
                    action.update(status="error", finished=now(), error={"code": "action_failed",
                                  "message": "interrupted by a restart of the local cloud"})
            for server in list(self.store["servers"].values()):
                if server["status"] == "deleting":
                    self.drop_server(server)
                    continue
                server["locked"] = False
                if server.get("power") == "on":
                    server["status"] = "starting"
                    self.boot(server)
                else:
                    server["status"] = "off"
            for image in list(self.store["images"].values()):
                if image["status"] == "creating":
                    self.storage.delete(self.layout.snapshots / str(image["id"]))
                    del self.store["images"][image["id"]]
            self.store.save()
        self.enforce_firewalls()

    def shutdown_all(self, timeout: float = 30) -> None:
        """Stop every guest cleanly (cloud-down); their power state is kept for the next start."""
        self.closing = True
        for machine in list(self.machines.values()):
            machine.shutdown()
        deadline = time.monotonic() + timeout
        for machine in list(self.machines.values()):
            if not machine.wait_off(max(0.1, deadline - time.monotonic())):
                machine.poweroff(5)

    def reset(self) -> None:
        """Delete every server, snapshot, key, firewall, network, placement group and Primary IP, and disarm
        injected faults (a killed test's would fail the next run's first actions) (cloud-reset)."""
        self.faults.set([])
        for server in list(self.store["servers"].values()):
            self.drop_server(server)
        with self.store.lock:
            for image in list(self.store["images"].values()):
                self.storage.delete(self.layout.snapshots / str(image["id"]))
            networks = list(self.store["networks"])
            for kind in ("images", "ssh_keys", "firewalls", "actions", "networks", "placement_groups", "primary_ips"):
                self.store[kind].clear()
            self.store.save()
        self.networks.apply(networks)
