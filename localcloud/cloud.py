"""The local cloud's resources and what their actions do to real machines.

HTTP lives in ``app.py``; this module validates input like the real API, keeps records in
the ``Store`` and runs actions in background threads that drive ``Machine`` and ``Storage``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import catalog, labels
from .errors import APIError, invalid_input, not_found
from .faults import Faults
from .machines import Machine, Seed, kill_orphans
from .paths import SUBNET_PREFIX, Layout
from .storage import Storage
from .store import Store, now

log = logging.getLogger("localcloud")

USER_DATA_LIMIT = 32 * 1024
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
MACHINE_PREFIX = "ik-"
BOOT_TIMEOUT = 60


class ActionFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Cloud:
    def __init__(self, layout: Layout, storage: Storage, faults: Faults):
        self.layout = layout
        self.storage = storage
        self.faults = faults
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
                    self._drop_server(server)
                    continue
                server["locked"] = False
                if server.get("power") == "on":
                    server["status"] = "starting"
                    self._boot(server)
                else:
                    server["status"] = "off"
            for image in list(self.store["images"].values()):
                if image["status"] == "creating":
                    self.storage.delete(self.layout.snapshots / str(image["id"]))
                    del self.store["images"][image["id"]]
            self.store.save()

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
            m = self.machines.get(server["id"])
            if m:
                m.poweroff()
            self._drop_server(server)
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
            self.store.save()
        return action

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
        except (KeyError, ValueError):
            raise not_found(what, ident) from None

    def _resolve(self, value, options: list[dict], field: str, what: str) -> dict:
        for opt in options:
            if value == opt["id"] or value == opt["name"] or (isinstance(value, str) and value == str(opt["id"])):
                return opt
        raise invalid_input(field, f"{what} '{value}' not found")

    def images(self) -> list[dict]:
        return catalog.SYSTEM_IMAGES + list(self.store["images"].values())

    # -- SSH keys --------------------------------------------------------------------------
    def create_ssh_key(self, body: dict) -> dict:
        name, public_key = body.get("name"), (body.get("public_key") or "").strip()
        if not isinstance(name, str) or not name.strip():
            raise invalid_input("name", "name is required")
        fingerprint = ssh_fingerprint(public_key)
        lab = labels.validate(body.get("labels"))
        with self.store.lock:
            for key in self.store["ssh_keys"].values():
                if key["name"] == name:
                    raise APIError("uniqueness_error", "SSH key with the same name already exists",
                                   details={"fields": [{"name": "name"}]})
                if key["fingerprint"] == fingerprint:
                    raise APIError("uniqueness_error", "SSH key with the same fingerprint already exists",
                                   details={"fields": [{"name": "public_key"}]})
            key = {"id": self.store.new_id("ssh_keys"), "name": name, "fingerprint": fingerprint,
                   "public_key": public_key, "labels": lab, "created": now()}
            self.store["ssh_keys"][key["id"]] = key
            self.store.save()
        return key

    # -- servers ---------------------------------------------------------------------------
    def create_server(self, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not HOSTNAME_RE.match(name):
            raise invalid_input("name", "name must be a valid hostname (RFC 1123)")
        stype = self._resolve(body.get("server_type"), catalog.SERVER_TYPES, "server_type", "server type")
        image = self._resolve(body.get("image"), [i for i in self.images() if i["status"] == "available"],
                              "image", "image")
        location = self._pick_location(body, stype)
        if image["architecture"] != stype["architecture"]:
            raise invalid_input("image", f"image architecture {image['architecture']} does not match "
                                         f"server type architecture {stype['architecture']}")
        if stype["architecture"] != "x86":
            raise APIError("resource_unavailable", f"server type {stype['name']} (arm) cannot run on this "
                           "local cloud (x86 host); choose an x86 type such as cx23")
        dep = stype["deprecation"]
        if dep and dep["unavailable_after"] < now():
            raise invalid_input("server_type", f"server type {stype['name']} is no longer available")
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > USER_DATA_LIMIT):
            raise invalid_input("user_data", f"user_data must be a string of at most {USER_DATA_LIMIT} bytes")
        keys = [self._resolve(k, list(self.store["ssh_keys"].values()), "ssh_keys", "SSH key")
                for k in body.get("ssh_keys") or []]
        firewalls = [self.get("firewalls", f.get("firewall") if isinstance(f, dict) else f, "firewall")
                     for f in body.get("firewalls") or []]
        lab = labels.validate(body.get("labels"))
        start = body.get("start_after_create", True) is not False
        with self.store.lock:
            if any(s["name"] == name for s in self.store["servers"].values()):
                raise APIError("uniqueness_error", "server name is already used",
                               details={"fields": [{"name": "name"}]})
            sid = self.store.new_id("servers")
            server = {
                "id": sid, "name": name, "labels": lab, "created": now(), "status": "initializing",
                "server_type": stype["name"], "location": location["name"], "image_id": image["id"],
                "ssh_keys": [k["public_key"] for k in keys], "user_data": user_data,
                "address": self._allocate_address(), "protection": {"delete": False, "rebuild": False},
                "locked": False, "power": "on" if start else "off", "firewalls": [f["id"] for f in firewalls],
                "instance": secrets.token_hex(8),
            }
            self.store["servers"][sid] = server
            for fw in firewalls:
                fw.setdefault("applied_to", []).append(sid)
            self.store.save()
        create = self.new_action("create_server", [("server", sid)])
        after = [self.new_action("start_server", [("server", sid)])] if start else []
        root_password = None if keys else secrets.token_urlsafe(15)

        def work(progress):
            self.storage.clone(self._image_root(image), self._disk(server))
            progress(50)
            self._write_seed(server)
            if start:
                server["status"] = "starting"
                self._boot(server, wait=True)
            else:
                server["status"] = "off"
            self.store.save()

        def failed():
            server["status"] = "off"
            server["power"] = "off"

        self.run_action(create, work, on_error=failed, then=after)
        return {"server": server, "action": create, "next_actions": after, "root_password": root_password}

    def _pick_location(self, body: dict, stype: dict) -> dict:
        if body.get("location") and body.get("datacenter"):
            raise invalid_input("location", "specify either location or datacenter, not both")
        if body.get("datacenter"):
            dc = self._resolve(body["datacenter"], catalog.DATACENTERS, "datacenter", "datacenter")
            location = catalog.LOCATION_BY_NAME[dc["location"]]
        elif body.get("location"):
            location = self._resolve(body["location"], catalog.LOCATIONS, "location", "location")
        else:
            location = catalog.LOCATION_BY_NAME[stype["locations"][0]["name"]]
        if location["name"] not in {loc["name"] for loc in stype["locations"]}:
            raise APIError("resource_unavailable",
                           f"server type {stype['name']} is not available in {location['name']}; available in: "
                           + ", ".join(loc["name"] for loc in stype["locations"]))
        return location

    def _allocate_address(self) -> str:
        used = {s["address"] for s in self.store["servers"].values()}
        for host in range(10, 250):
            addr = f"{SUBNET_PREFIX}.{host}"
            if addr not in used:
                return addr
        raise APIError("resource_limit_exceeded", "the local cloud has no free address left (240 servers)")

    def _disk(self, server: dict) -> Path:
        return self.layout.disks / str(server["id"])

    def _image_root(self, image: dict) -> Path:
        if image["type"] == "system":
            path = self.layout.base_images / image["name"]
            if not (path / "etc/os-release").exists():
                raise ActionFailed("action_failed", f"system image {image['name']} is not built; run `invoke cloud-up`")
            return path
        return self.layout.snapshots / str(image["id"])

    def _write_seed(self, server: dict) -> None:
        Seed(instance_id=f"i-{server['id']}-{server['instance']}", hostname=server["name"],
             address=server["address"], ssh_keys=server["ssh_keys"], user_data=server["user_data"]
             ).write(self._disk(server))

    def _machine(self, server: dict) -> Machine:
        sid = server["id"]
        if sid not in self.machines:
            def on_exit(sid=sid):
                with self.store.lock:
                    s = self.store["servers"].get(sid)
                    if s and s["status"] != "deleting":
                        s["status"] = "off"
                        if not self.closing:  # cloud-down keeps the power state for the next cloud-up
                            s["power"] = "off"
                        self.store.save()
            self.machines[sid] = Machine(f"{MACHINE_PREFIX}{sid}", self._disk(server), server["name"],
                                         self.layout.machine_logs / f"{sid}.log", on_exit)
        return self.machines[sid]

    def _boot(self, server: dict, wait: bool = False) -> None:
        """Power the machine on; with ``wait`` return once its systemd runs (else in the background)."""
        machine = self._machine(server)
        server["power"] = "on"
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

    def server_action(self, sid: int, command: str, body: dict) -> dict:
        server = self.get("servers", sid, "server")
        handler = getattr(self, f"_do_{command}", None)
        if handler is None:
            raise APIError("not_found", f"action '{command}' is not supported by the local cloud", status=404)
        with self.store.lock:
            if server["locked"] or server["status"] in ("initializing", "deleting"):
                raise APIError("locked", "server is locked by another action; wait for it to finish")
            return handler(server, body or {})

    def _locked_action(self, server: dict, command: str, work, extra=(), on_error=None) -> dict:
        """An action on the server that holds its lock (other actions get `locked`) until done."""
        action = self.new_action(command, [("server", server["id"]), *extra])
        server["locked"] = True

        def locked_work(progress):
            try:
                work(progress)
            finally:
                server["locked"] = False

        self.run_action(action, locked_work, on_error=on_error)
        return action

    def _do_poweron(self, server, body):
        def work(progress):
            if not self._machine(server).running:
                server["status"] = "starting"
                self._boot(server, wait=True)
        return self._locked_action(server, "start_server", work)

    def _do_poweroff(self, server, body):
        def work(progress):
            server["power"] = "off"
            self._machine(server).poweroff()
            server["status"] = "off"
        return self._locked_action(server, "stop_server", work)

    def _do_shutdown(self, server, body):
        # Like Hetzner: the action only sends the ACPI signal and finishes before the guest is off.
        machine = self._machine(server)
        if machine.running:
            server["status"] = "stopping"
            machine.shutdown()
        return self._locked_action(server, "shutdown_server", lambda progress: None)

    def _do_reboot(self, server, body):
        return self._locked_action(server, "reboot_server", lambda p: self._machine(server).reboot())

    def _do_reset(self, server, body):
        return self._locked_action(server, "reset_server", lambda p: self._machine(server).reset())

    def _do_change_protection(self, server, body):
        for key in ("delete", "rebuild"):
            if key in body:
                if not isinstance(body[key], bool):
                    raise invalid_input(key, f"{key} must be a boolean")
                server["protection"][key] = body[key]
        self.store.save()
        return self.new_action("change_protection", [("server", server["id"])], status="success")

    def _do_create_image(self, server, body):
        kind = body.get("type", "snapshot")
        if kind not in ("snapshot", "backup"):
            raise invalid_input("type", "type must be snapshot or backup")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid_input("description", "description must be a string")
        lab = labels.validate(body.get("labels"))
        source = self.get_image_of(server) or catalog.SYSTEM_IMAGES[0]
        iid = self.store.new_id("images")
        image = {
            "id": iid, "type": kind, "status": "creating", "name": None,
            "description": description or f"{server['name']}-{now()}", "image_size": None,
            "disk_size": next(t["disk"] for t in catalog.SERVER_TYPES if t["name"] == server["server_type"]),
            "created": now(), "created_from": {"id": server["id"], "name": server["name"]},
            "bound_to": server["id"] if kind == "backup" else None, "os_flavor": source["os_flavor"],
            "os_version": source["os_version"], "rapid_deploy": False, "protection": {"delete": False},
            "deprecated": None, "deleted": None, "labels": lab, "architecture": source["architecture"],
        }
        self.store["images"][iid] = image
        path = self.layout.snapshots / str(iid)

        def work(progress):
            self.storage.clone(self._disk(server), path, readonly=True)
            progress(80)
            image["image_size"] = round(self.storage.size_bytes(path) / 1024**3, 3)
            image["status"] = "available"
            self.store.save()

        def failed():
            self.storage.delete(path)
            self.store["images"].pop(iid, None)

        action = self._locked_action(server, "create_image", work, extra=[("image", iid)], on_error=failed)
        return {"image": image, "action": action}

    def get_image_of(self, server: dict) -> dict | None:
        """The image the server was created from; None once that snapshot is deleted (as on Hetzner)."""
        return next((i for i in self.images() if i["id"] == server["image_id"]), None)

    def _do_rebuild(self, server, body):
        if server["protection"]["rebuild"]:
            raise APIError("protected", "server is protected against rebuild; change its protection first")
        image = self._resolve(body.get("image"), [i for i in self.images() if i["status"] == "available"],
                              "image", "image")

        def work(progress):
            machine = self._machine(server)
            was_on = machine.running
            server["status"] = "rebuilding"
            machine.poweroff()
            self.storage.delete(self._disk(server))
            self.storage.clone(self._image_root(image), self._disk(server))
            server["image_id"] = image["id"]
            server["instance"] = secrets.token_hex(8)
            self._write_seed(server)
            progress(70)
            if was_on:
                self._boot(server, wait=True)
            else:
                server["status"] = "off"
            self.store.save()

        action = self._locked_action(server, "rebuild_server", work)
        return {"action": action, "root_password": None}

    def delete_server(self, sid: int) -> dict:
        server = self.get("servers", sid, "server")
        if server["protection"]["delete"]:
            raise APIError("protected", "server is protected against deletion; change its protection first")
        with self.store.lock:
            if server["status"] == "deleting":
                raise APIError("locked", "server is already being deleted")
            server["status"] = "deleting"
            server["locked"] = True
            self.store.save()
        action = self.new_action("delete_server", [("server", sid)])

        def work(progress):
            # A server deleted while it is still being created (or powered on) goes once that action
            # is over: otherwise its machine would boot after the delete, an orphan holding its address.
            self._await_actions(sid, action["id"])
            m = self.machines.get(sid)
            if m:
                m.poweroff()
            self._drop_server(server)

        self.run_action(action, work)
        return action

    def _await_actions(self, sid: int, own: int, timeout: float = BOOT_TIMEOUT + 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [a for a in list(self.store["actions"].values()) if a["id"] != own and a["status"] == "running"
                       and any(r["type"] == "server" and r["id"] == sid for r in a["resources"])]
            if not running:
                return
            time.sleep(0.05)

    def _drop_server(self, server: dict) -> None:
        sid = server["id"]
        m = self.machines.pop(sid, None)
        if m and m.running:
            m.poweroff()
        self.storage.delete(self._disk(server))
        with self.store.lock:
            for fw in self.store["firewalls"].values():
                if sid in fw.get("applied_to", []):
                    fw["applied_to"].remove(sid)
            self.store["servers"].pop(sid, None)
            self.store.save()

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

    # -- firewalls -------------------------------------------------------------------------
    def validate_rules(self, rules) -> list[dict]:
        if not isinstance(rules, list):
            raise invalid_input("rules", "rules must be a list")
        out = []
        for i, r in enumerate(rules):
            field = f"rules[{i}]"
            if not isinstance(r, dict) or r.get("direction") not in ("in", "out"):
                raise invalid_input(field, "direction must be 'in' or 'out'")
            if r.get("protocol") not in ("tcp", "udp", "icmp", "esp", "gre"):
                raise invalid_input(field, "protocol must be one of tcp, udp, icmp, esp, gre")
            port = r.get("port")
            if r["protocol"] in ("tcp", "udp"):
                if not isinstance(port, str) or not re.fullmatch(r"(any|\d{1,5}(-\d{1,5})?)", port):
                    raise invalid_input(field, "port must be a port, a range 'from-to' or 'any' for tcp/udp")
            elif port is not None:
                raise invalid_input(field, "port is only allowed for tcp and udp")
            ips_field = "source_ips" if r["direction"] == "in" else "destination_ips"
            ips = r.get(ips_field) or []
            for ip in ips:
                try:
                    ipaddress.ip_network(ip, strict=False)
                except ValueError:
                    raise invalid_input(field, f"{ip!r} in {ips_field} is not a CIDR") from None
            out.append({"direction": r["direction"], "protocol": r["protocol"], "port": port,
                        "source_ips": ips if r["direction"] == "in" else [],
                        "destination_ips": ips if r["direction"] == "out" else [],
                        "description": r.get("description")})
        return out

    def create_firewall(self, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid_input("name", "name is required")
        rules = self.validate_rules(body.get("rules") or [])
        lab = labels.validate(body.get("labels"))
        targets = self._firewall_targets(body.get("apply_to") or [])
        with self.store.lock:
            if any(f["name"] == name for f in self.store["firewalls"].values()):
                raise APIError("uniqueness_error", "firewall name is already used",
                               details={"fields": [{"name": "name"}]})
            fw = {"id": self.store.new_id("firewalls"), "name": name, "labels": lab, "created": now(),
                  "rules": rules, "applied_to": []}
            self.store["firewalls"][fw["id"]] = fw
            actions = [self.new_action("set_firewall_rules", [("firewall", fw["id"])], status="success")]
            if targets:
                actions.append(self._apply(fw, targets))
            self.store.save()
        return {"firewall": fw, "actions": actions}

    def _firewall_targets(self, apply_to) -> list[dict]:
        servers = []
        for i, res in enumerate(apply_to):
            if not isinstance(res, dict) or res.get("type") != "server" or not isinstance(res.get("server"), dict):
                raise invalid_input(f"apply_to[{i}]", "only {'type': 'server', 'server': {'id': ..}} is supported")
            servers.append(self.get("servers", res["server"].get("id"), "server"))
        return servers

    def _apply(self, fw: dict, servers: list[dict]) -> dict:
        for s in servers:
            if fw["id"] in s["firewalls"]:
                raise APIError("firewall_already_applied", f"firewall already applied to server {s['id']}")
        for s in servers:
            s["firewalls"].append(fw["id"])
            fw["applied_to"].append(s["id"])
        return self.new_action("apply_firewall", [("firewall", fw["id"])] + [("server", s["id"]) for s in servers],
                               status="success")

    def firewall_action(self, fid: int, command: str, body: dict) -> list[dict]:
        fw = self.get("firewalls", fid, "firewall")
        with self.store.lock:
            if command == "set_rules":
                fw["rules"] = self.validate_rules(body.get("rules") or [])
                result = [self.new_action("set_firewall_rules", [("firewall", fid)], status="success")]
            elif command == "apply_to_resources":
                result = [self._apply(fw, self._firewall_targets(body.get("apply_to") or []))]
            elif command == "remove_from_resources":
                servers = self._firewall_targets(body.get("remove_from") or [])
                for s in servers:
                    if fid not in s["firewalls"]:
                        raise APIError("firewall_already_removed", f"firewall is not applied to server {s['id']}")
                for s in servers:
                    s["firewalls"].remove(fid)
                    fw["applied_to"].remove(s["id"])
                result = [self.new_action("remove_firewall", [("firewall", fid)] +
                                          [("server", s["id"]) for s in servers], status="success")]
            else:
                raise APIError("not_found", f"firewall action '{command}' does not exist", status=404)
            self.store.save()
        return result

    def delete_firewall(self, fid: int) -> None:
        fw = self.get("firewalls", fid, "firewall")
        if fw["applied_to"]:
            raise APIError("resource_in_use", "firewall is still applied to resources; remove it first")
        with self.store.lock:
            self.store["firewalls"].pop(fid)
            self.store.save()


def ssh_fingerprint(public_key: str) -> str:
    """MD5 fingerprint of an OpenSSH public key, as the API reports it; invalid_input if malformed."""
    parts = public_key.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise invalid_input("public_key", "public_key must be an OpenSSH public key ('ssh-ed25519 AAAA... comment')")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise invalid_input("public_key", "public_key is not valid base64") from None
    type_len = int.from_bytes(blob[:4], "big") if len(blob) > 4 else 0
    if blob[4 : 4 + type_len].decode(errors="replace") != parts[0]:
        raise invalid_input("public_key", "public_key data does not match its key type")
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 - the API's fingerprint format is MD5
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))
