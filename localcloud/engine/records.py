"""The cloud's records and its actions: what every resource of the API is kept as and looked up by.

Records live in one ``Store`` (a JSON file). An action is the record of work that runs in a
background thread and ends in success or error, as Hetzner's actions do; a fault rule can make it
lag or fail. What servers' machines add to this is in ``cloud``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import APIError, invalid_input, not_found
from ..paths import Layout
from ..state.store import Store, now
from .architectures import Architectures
from .faults import Faults

log = logging.getLogger("localcloud")

KEEP_ACTIONS = 5000


class ActionFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Records:
    def __init__(self, layout: Layout, faults: Faults, architectures: Architectures | None = None):
        self.layout = layout
        self.faults = faults
        self.architectures = architectures or Architectures()
        self.store = Store(layout.state_file)

    # -- lookups ---------------------------------------------------------------------------
    def get(self, kind: str, ident: Any, what: str) -> dict:
        try:
            return self.store[kind][int(ident)]
        except (KeyError, ValueError, TypeError):  # TypeError: an id that is no number at all (null, an object)
            raise not_found(what, ident) from None

    def resolve(self, value: Any, options: list[dict], field: str, what: str) -> dict:
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
        return self.architectures.system_images() + list(self.store["images"].values())

    def get_image_of(self, server: dict) -> dict | None:
        """The image the server was created from; None once that snapshot is deleted (as on Hetzner)."""
        return next((i for i in self.images() if i["id"] == server["image_id"]), None)

    def actions_of(self, kind: str | None, ident: int | None = None) -> list[dict]:
        """Actions on resources of ``kind`` (and id ``ident``); every action when kind is None."""
        return [a for a in list(self.store["actions"].values())
                if kind is None or any(r["type"] == kind and (ident is None or r["id"] == ident)
                                       for r in a["resources"])]

    # -- actions ---------------------------------------------------------------------------
    def new_action(self, command: str, resources: list[tuple[str, int]], *, status: str = "running") -> dict:
        action: dict[str, Any] = {
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
                   *, on_error: Callable[[], None] | None = None, then: Sequence[dict] = ()) -> None:
        """Run ``work(progress)`` in a thread; the action (and ``then``) end in success or error."""

        def progress(pct: int) -> None:
            action["progress"] = max(action["progress"], min(99, pct))

        def runner() -> None:
            fault = self.faults.for_action(action["command"])
            result: dict[str, Any]
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
