"""The state the shared steps work on: one server, made from a spec (or taken over), reached over SSH with a key
and only if it shows its pinned host key, within a deadline; leased while the run works on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from hcloud import Client
from hcloud.actions import BoundAction
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from ..cloud.actions import ActionWatcher
from ..cloud.spec import ServerSpec
from ..host.hostkey import Pin
from ..host.keys import KeyPair
from ..pipeline import Interrupted


@dataclass
class HostJob:
    client: Client
    progress: Callable[[str], None]
    resource_name: str  # the temporary key's and the server's name
    spec: ServerSpec | None = None  # what the create step makes (None: a job that makes no server)
    labels: dict[str, str] = field(default_factory=dict)  # the temporary key's
    timeout: float = 600.0  # seconds from the start until the host must answer SSH and finish cloud-init
    keep_on_failure: bool = False
    outlives: bool = False  # the server is what the command delivers (an agent, a pool host): it stays on success
    leased: bool = True  # what the job makes carries a lease its run renews (off: nobody would end it, --no-wait)
    committed: bool = False  # the server serves already (a roll took over with it): no cleanup deletes it
    cancel: threading.Event = field(default_factory=threading.Event)
    watcher: ActionWatcher | None = None  # one poller for a fleet's actions; None: the job polls its own
    started: float = field(default_factory=time.monotonic)
    keypair: KeyPair | None = None
    key_file: Path | None = None  # the private key on disk, only while a kept server may need it
    ssh_key: BoundSSHKey | None = None  # the temporary key in the project
    server: BoundServer | None = None
    action: BoundAction | None = None  # what brings the server up: its create, or a rebuild
    ip: str | None = None
    pin: Pin | None = None  # the host key the server must show (the one the create step made for it)
    conn: paramiko.SSHClient | None = None
    failed: bool = False

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def keep(self) -> bool:
        """Whether what failed stays for the operator to debug (--keep-on-failure)."""
        return self.failed and self.keep_on_failure

    def discard(self) -> bool:
        """Whether cleanups remove the server: it is temporary or the job failed, it is not kept for debugging,
        and it does not serve already."""
        return not self.keep() and not self.committed and (self.failed or not self.outlives)

    def check(self, waiting_for: str = "the host") -> None:
        """Raise when the run was cancelled or the deadline has passed."""
        if self.cancel.is_set():
            raise Interrupted("interrupted (Ctrl-C)")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"not ready within {self.timeout:.0f} s: still waiting for {waiting_for} (raise the "
                               "timeout, or look at the server's console and cloud-init log)")

    def event(self, what: str, detail: str = "") -> None:
        """A milestone (created, booting, ssh, cloud-init done); jobs that report them override this."""

    def unavailable(self, full: str, following: str, what: str) -> None:
        """A location without capacity for the ``what``: the create tries ``following`` (said and reported)."""
        self.progress(f"{full} has no capacity for the {what}: trying {following}")
        self.event("location unavailable", f"{full} has no capacity: trying {following}")
