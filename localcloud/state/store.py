"""The local cloud's records, persisted as one JSON file so state survives a restart."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from .durable import write_atomic

KINDS = ("servers", "images", "ssh_keys", "firewalls", "actions", "networks", "placement_groups", "primary_ips")
# Distinct id ranges make a mixed-up id fail loudly instead of hitting the wrong resource. ``private_macs`` counts
# the MACs of servers' private network interfaces (no table of its own).
FIRST_ID = {"servers": 1_000_001, "images": 200_000_001, "ssh_keys": 30_000_001, "firewalls": 40_001,
            "actions": 5_000_001, "networks": 600_001, "placement_groups": 800_001, "primary_ips": 60_000_001,
            "private_macs": 1}


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class StateError(RuntimeError):
    """The state file cannot be read; the message names the file and what to do."""


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not all(isinstance(data.get(k, {}), dict) for k in (*KINDS, "next_id")):
            raise ValueError("not an object of the local cloud's tables")
        return data
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(
            f"the local cloud's state file {path} is damaged ({exc}). Repair it, or move it aside to start with "
            f"an empty cloud: `mv {path} {path}.damaged` (the machines' disks under {path.parent / 'pool'} "
            "then belong to no server and can be deleted)") from None


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.next_id = dict(FIRST_ID)
        self.tables: dict[str, dict[int, dict]] = {k: {} for k in KINDS}
        if path.exists():
            data = _load(path)
            self.next_id.update(data.get("next_id", {}))
            for kind in KINDS:
                self.tables[kind] = {int(k): v for k, v in data.get(kind, {}).items()}

    def new_id(self, kind: str) -> int:
        with self.lock:
            ident = self.next_id[kind]
            self.next_id[kind] += 1
            return ident

    def save(self) -> None:
        with self.lock:
            data = {"next_id": self.next_id, **{k: self.tables[k] for k in KINDS}}
            write_atomic(self.path, json.dumps(data, indent=1))

    def __getitem__(self, kind: str) -> dict[int, dict]:
        return self.tables[kind]
