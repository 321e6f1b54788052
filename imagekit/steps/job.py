"""The state the shared steps work on: one server, reached over SSH with a key, within a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from hcloud import Client

from ..host.keys import KeyPair
from ..pipeline import Interrupted


@dataclass
class HostJob:
    client: Client
    progress: Callable[[str], None]
    resource_name: str  # the temporary key's and the server's name
    labels: dict[str, str]
    timeout: float = 600.0  # seconds from the start until the host must answer SSH and finish cloud-init
    keep_on_failure: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    keypair: KeyPair | None = None
    key_file: Path | None = None  # the private key on disk, only while a kept server may need it
    ssh_key: object | None = None  # the temporary key in the project
    extra_keys: list = field(default_factory=list)  # more keys for the server (the operator's)
    server: object | None = None
    ip: str | None = None
    conn: paramiko.SSHClient | None = None
    failed: bool = False

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def keep(self) -> bool:
        return self.failed and self.keep_on_failure

    def check(self, waiting_for: str = "the host") -> None:
        """Raise when the run was cancelled or the deadline has passed."""
        if self.cancel.is_set():
            raise Interrupted("interrupted (Ctrl-C)")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"not ready within {self.timeout:.0f} s: still waiting for {waiting_for} (raise the "
                               "timeout, or look at the server's console and cloud-init log)")

    def event(self, what: str, detail: str = "") -> None:
        """A milestone (ssh, cloud-init done); jobs that report them (agents) override this."""


@dataclass
class ServerJob(HostJob):
    """A job that makes its own server (CreateServer): a builder, a round trip."""

    server_type: object | None = None
    image: object | None = None  # what the server boots
    locations: list = field(default_factory=lambda: [None])  # tried in order; [None]: the API's choice
    user_data: str | None = None
