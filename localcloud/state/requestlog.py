"""The log of API requests that tests and benchmarks count calls from, bounded in memory and on disk.

``total`` counts every request since the process started and only grows; the newest ``keep``
entries stay in memory and the file rolls over to ``.1`` once it passes ``max_file_bytes``, so a
long soak or a busy fleet does not grow the API process or the disk without end.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path

KEEP = 10_000
MAX_FILE_BYTES = 16 * 1024 * 1024


class RequestLog:
    def __init__(self, path: Path, *, keep: int = KEEP, max_file_bytes: int = MAX_FILE_BYTES):
        self.path = Path(path)
        self.entries: deque[dict] = deque(maxlen=keep)
        self.total = 0
        self.max_file_bytes = max_file_bytes
        self.lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self.lock:
            self.total += 1
            entry["seq"] = self.total
            self.entries.append(entry)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
                rolled = fh.tell() > self.max_file_bytes
            if rolled:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))

    def since(self, seq: int) -> list[dict]:
        """The kept entries newer than ``seq`` (older ones may have been dropped)."""
        with self.lock:
            return [e for e in self.entries if e["seq"] > seq]
