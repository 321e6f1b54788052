"""What a command made and could not remove is never silent. A cleanup whose deletion fails raises
``LeftoverError`` naming the resource and the command that removes it; the pipeline records it in the command's
ledger (and says so live: a progress line, a ``cleanup failed`` event) and goes on unwinding; the task's one
wrapper (``command.run``) puts the ledger in the result as ``leftovers``, prints a warning line per leftover
and exits with ``EXIT_LEFTOVERS``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

EXIT_LEFTOVERS = 125  # as container runtimes use it: not a code a job's command or a plain failure gives


@dataclass(frozen=True)
class Leftover:
    kind: str  # server, ssh key, snapshot, firewall, tailscale key, tailscale devices, ...
    id: int | str | None
    name: str | None
    error: str
    remove: str  # the command that removes it
    gc: bool = False  # `invoke gc` sweeps it too (it carries a lease, which ends with its run)

    def warning(self) -> str:
        what = " ".join([self.kind, *([str(self.id)] if self.id is not None else []),
                         *([f"({self.name})"] if self.name else [])])
        also = " or `invoke gc`" if self.gc else ""
        return f"warning: {what} could not be deleted: {self.error}; delete it with `{self.remove}`{also}"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "gc"}


class LeftoverError(Exception):
    """Raised by a cleanup that could not remove what its step made."""

    def __init__(self, leftover: Leftover):
        super().__init__(leftover.warning())
        self.leftover = leftover


class Ledger:
    """The leftovers of one command; a fleet's workers record into it at once."""

    def __init__(self) -> None:
        self._items: list[Leftover] = []
        self._lock = threading.Lock()

    def record(self, leftover: Leftover) -> None:
        with self._lock:
            self._items.append(leftover)

    @property
    def items(self) -> list[Leftover]:
        with self._lock:
            return list(self._items)


_active = Ledger()  # a library caller's, unless a command opened its own


@contextlib.contextmanager
def ledger() -> Iterator[Ledger]:
    """A fresh ledger for the block (one command): every pipeline's failed cleanups are recorded in it."""
    global _active
    previous, _active = _active, Ledger()
    try:
        yield _active
    finally:
        _active = previous


def record(leftover: Leftover) -> None:
    _active.record(leftover)


@contextlib.contextmanager
def removing(kind: str, ident: int | str | None, name: str | None, remove: str, labels: dict[str, str] | None = None
             ) -> Iterator[None]:
    """A deletion; when it fails, a ``LeftoverError`` naming what is left and the command that removes it
    (``labels``: the resource's; `invoke gc` sweeps what carries a lease)."""
    from .cloud import leases
    from .cloud.api import explain

    try:
        yield
    except Exception as exc:
        gc = (labels or {}).get("managed-by") == "imagekit" and leases.KEY in (labels or {})
        raise LeftoverError(Leftover(kind, ident, name, explain(exc), remove, gc)) from exc
