"""Deadlines carried as labels: a resource whose run may die without cleaning up (SIGKILL, power
loss) says until when that run is responsible for it. Past the deadline plus a slack the run has
ended or cleaned up, had it lived, so ``gc`` may sweep what still carries the label. The slack is a
setting (IMAGEKIT_DEADLINE_SLACK): tests that wait out a deadline shorten it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from hcloud import Client
from hcloud.servers import BoundServer

from .. import settings


class Labelled(Protocol):
    """A resource with labels (a server, an SSH key)."""

    @property
    def labels(self) -> dict[str, str] | None: ...


@dataclass(frozen=True)
class DeadlineLabel:
    key: str
    default_slack: float  # seconds: a run past its deadline is still deleting what it made, and clocks differ

    @property
    def slack(self) -> float:
        return settings.deadline_slack() or self.default_slack

    def label(self, deadline: float) -> dict[str, str]:
        return {self.key: str(int(deadline))}

    def of(self, resource: Labelled) -> float | None:
        """When the run gives up on ``resource``; None without the label (0 when it is garbled)."""
        value = (resource.labels or {}).get(self.key)
        if value is None:
            return None
        return float(value) if value.isdigit() else 0.0

    def cleared(self, client: Client, server: BoundServer) -> BoundServer:
        """The server with the label taken off (the last step of a run that got all the way); the updated server."""
        return client.servers.update(server, labels={k: v for k, v in (server.labels or {}).items() if k != self.key})

    def passed(self, resource: Labelled, now: float | None = None) -> bool:
        until = self.of(resource)
        return until is not None and (time.time() if now is None else now) > until + self.slack
