"""The local cloud's records, persisted as one JSON file so state survives a restart."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

KINDS = ("servers", "images", "ssh_keys", "firewalls", "actions")
# Distinct id ranges make a mixed-up id fail loudly instead of hitting the wrong resource.
FIRST_ID = {"servers": 1_000_001, "images": 200_000_001, "ssh_keys": 30_000_001, "firewalls": 40_001,
            "actions": 5_000_001}


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.next_id = dict(FIRST_ID)
        self.tables: dict[str, dict[int, dict]] = {k: {} for k in KINDS}
        if path.exists():
            data = json.loads(path.read_text())
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
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.path)

    def __getitem__(self, kind: str) -> dict[int, dict]:
        return self.tables[kind]
