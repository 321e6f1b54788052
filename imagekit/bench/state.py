"""What a bench run shares: its cloud, its sizes, the snapshot every figure is measured from, and the figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcloud import Client

from ..target import Target


@dataclass
class Bench:
    target: Target
    client: Client
    runs: int
    fleet_size: int
    progress: Callable[[str], None]
    build: dict[str, Any] = field(default_factory=dict)
    incremental: dict[str, Any] = field(default_factory=dict)  # a build grown from the bench's snapshot (--from)
    floor_build: dict[str, Any] = field(default_factory=dict)  # the bare build: same packages, plain apt-get
    snapshot: int | None = None
    image_archive: Path | None = None  # the `docker save` archive baked into the snapshot (BENCH_IMAGE)
    firewalls_before: set[int | None] = field(default_factory=set)
    agents: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
