"""The local cloud's engine: its records, actions run in background threads, servers' machines.

HTTP lives in ``app.py``; creating and deleting servers in ``servers``, their actions in
``server_actions``, firewalls in ``firewalls``, shared body checks in ``validation``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import catalog, labels
from .bridgefilter import Ports
from .errors import APIError, invalid_input, not_found
from .faults import Faults
from .hostcmd import HostCommandError
from .machines import Machine, Seed, kill_orphans
from .paths import MACHINE_PREFIX, Layout
from .storage import Storage
from .store import Store, now
from .validation import ssh_fingerprint

log = logging.getLogger("localcloud")

BOOT_TIMEOUT = 60
KEEP_ACTIONS = 5000


class ActionFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Cloud:
    def __init__(self, layout: Layout, storage: Storage, faults: Faults, *,
                 filter_guests: Callable[[dict[str, list[dict]]], None] | None = None, ports: Ports | None = None):
        """``filter_guests`` enforces attached firewalls on the host (``hostfirewall.enforce``), ``ports`` pins
        each machine's bridge port to its server's identity; without them firewalls are only records and
        ports open (tests of the API in process)."""
        self.layout = layout
        self.storage = storage
        self.faults = faults
        self.filter_guests = filter_guests
        self.ports = ports
        self.store = Store(layout.state_file)
        self.machines: dict[int, Machine] = {}
        self.closing = False

    # -- start/stop of the whole cloud -------------------------------------------------------
    def resume(self) -> None:
        """Reconcile after a restart: kill orphaned guests, boot servers that were running."""
        for pid in kill_orphans(MACHINE_PREFIX, self.layout.disks):
            log.warning("killed orphaned guest process %s left by an earlier run", pid)
        with self.store.lock:
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
        """Delete every server, snapshot, key and firewall (cloud-reset)."""
        for server in list(self.store["servers"].values()):
            self.drop_server(server)
        with self.store.lock:
            for image in list(self.store["images"].values()):
                self.storage.delete(self.layout.snapshots / str(image["id"]))
            for kind in ("images", "ssh_keys", "firewalls", "actions"):
                self.store[kind].clear()
            self.store.save()

    # -- actions ---------------------------------------------------------------------------
    def new_action(self, command: str, resources: list[tuple[str, int]], *, status: str = "running") -> dict:
        action = {
            "id": self.store.new_id("actions"), "command": command, "status": status,
            "progress": 100 if status == "success" else 0, "started": now(),
            "finished": now() if status == "success" else None,
            "resources": [{"id": rid, "type": rtype} for rtype, rid in resources], "error": None,
        }
        with self.store.lock:
            self.store["actions"][action["id"]] = action
            self._forget_old_actions()
            self.store.save()
        return action

    def _forget_old_actions(self) -> None:
        """Keep the newest KEEP_ACTIONS records (running ones always): a long-lived cloud runs millions."""
        actions = self.store["actions"]
        excess = len(actions) - KEEP_ACTIONS
        if excess > 0:
            for aid in [a for a in sorted(actions) if actions[a]["status"] != "running"][:excess]:
                del actions[aid]

    def run_action(self, action: dict, work: Callable[[Callable[[int], None]], None],
                   *, on_error: Callable[[], None] | None = None, then: list[dict] = ()) -> None:
        """Run ``work(progress)`` in a thread; the action (and ``then``) end in success or error."""

        def progress(pct: int) -> None:
            action["progress"] = max(action["progress"], min(99, pct))

        def runner() -> None:
            fault = self.faults.for_action(action["command"])
            try:
                if fault and fault.get("delay"):
                    time.sleep(float(fault["delay"]))
                work(progress)
                if fault and fault.get("fail", True):
                    raise ActionFailed(fault.get("code", "action_failed"), "action failed (injected fault)")
                result = {"status": "success", "progress": 100, "error": None}
            except ActionFailed as exc:
                result = {"status": "error", "error": {"code": exc.code, "message": str(exc)}}
            except Exception as exc:  # a host-side failure is the action's error, as on a real cloud
                log.exception("action %s failed", action["command"])
                result = {"status": "error", "error": {"code": "action_failed", "message": str(exc)[:500]}}
            if result["status"] == "error" and on_error:
                try:
                    on_error()
                except Exception:
                    log.exception("cleanup after failed action %s", action["command"])
            with self.store.lock:
                for a in (action, *then):
                    a.update(result, finished=now())
                self.store.save()

        threading.Thread(target=runner, name=f"action-{action['id']}", daemon=True).start()

    # -- lookups ---------------------------------------------------------------------------
    def get(self, kind: str, ident: int | str, what: str) -> dict:
        try:
            return self.store[kind][int(ident)]
        except (KeyError, ValueError, TypeError):  # TypeError: an id that is no number at all (null, an object)
            raise not_found(what, ident) from None

    def resolve(self, value, options: list[dict], field: str, what: str) -> dict:
        for opt in options:
            if value == opt["id"] or value == opt["name"] or (isinstance(value, str) and value == str(opt["id"])):
                return opt
        raise invalid_input(field, f"{what} '{value}' not found")

    def check_name_free(self, kind: str, name: str, what: str, ident: int | None = None) -> None:
        """uniqueness_error if another ``kind`` record (not ``ident``) has this name, as the real API answers."""
        with self.store.lock:
            if any(r["name"] == name and r["id"] != ident for r in self.store[kind].values()):
                raise APIError("uniqueness_error", f"{what} name is already used",
                               details={"fields": [{"name": "name"}]})

    def images(self) -> list[dict]:
        return catalog.SYSTEM_IMAGES + list(self.store["images"].values())

    # -- SSH keys --------------------------------------------------------------------------
    def create_ssh_key(self, body: dict) -> dict:
        name, public_key = body.get("name"), body.get("public_key")
        if not isinstance(public_key, str):
            raise invalid_input("public_key", "public_key must be an OpenSSH public key string")
        public_key = public_key.strip()
        if not isinstance(name, str) or not name.strip():
            raise invalid_input("name", "name is required")
        fingerprint = ssh_fingerprint(public_key)
        lab = labels.validate(body.get("labels"))
        with self.store.lock:
            self.check_name_free("ssh_keys", name, "SSH key")
            for key in self.store["ssh_keys"].values():
                if key["fingerprint"] == fingerprint:
                    raise APIError("uniqueness_error", "SSH key with the same fingerprint already exists",
                                   details={"fields": [{"name": "public_key"}]})
            key = {"id": self.store.new_id("ssh_keys"), "name": name, "fingerprint": fingerprint,
                   "public_key": public_key, "labels": lab, "created": now()}
            self.store["ssh_keys"][key["id"]] = key
            self.store.save()
        return key

    # -- servers' machines ----------------------------------------------------------------
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
            def on_exit(sid=sid):
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
                                         self.layout.machine_logs / f"{sid}.log", on_exit)
            if self.ports:
                self.machines[sid].on_spawn = lambda m, s=server: self.ports.open(m.name, s["id"], s["address"],
                                                                                  lambda: m.running)
        return self.machines[sid]

    def boot(self, server: dict, wait: bool = False) -> None:
        """Power the machine on; with ``wait`` return once its systemd runs (else in the background)."""
        machine = self.machine(server)
        server["power"] = "on"
        if self.ports and not machine.running:
            self.ports.prepare(self.disk(server), server["id"])
        machine.start()
        if wait:
            self._mark_running(server, machine)
            return

        def background():
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

    def get_image_of(self, server: dict) -> dict | None:
        """The image the server was created from; None once that snapshot is deleted (as on Hetzner)."""
        return next((i for i in self.images() if i["id"] == server["image_id"]), None)

    def actions_of(self, kind: str | None, ident: int | None = None) -> list[dict]:
        """Actions on resources of ``kind`` (and id ``ident``); every action when kind is None."""
        return [a for a in list(self.store["actions"].values())
                if kind is None or any(r["type"] == kind and (ident is None or r["id"] == ident)
                                       for r in a["resources"])]

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

    # -- images ----------------------------------------------------------------------------
    def delete_image(self, iid: int) -> None:
        image = self.get("images", iid, "image")
        if image["protection"]["delete"]:
            raise APIError("protected", "image is protected against deletion; change its protection first")
        if image["status"] == "creating":
            raise APIError("locked", "image is still being created")
        self.storage.delete(self.layout.snapshots / str(iid))
        with self.store.lock:
            self.store["images"].pop(iid, None)
            self.store.save()
