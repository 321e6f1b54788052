"""The temporary SSH key: made in memory, labelled in the project (leased while its run lives), deleted with its
run.

With ``--keep-on-failure`` the private half is also written to a 0600 file, so that the
``ssh -i FILE root@IP`` printed for a kept server really logs in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from hcloud import Client
from hcloud.ssh_keys import BoundSSHKey

from ..cloud import leases
from ..host.keys import KeyPair, new_ed25519, save_private
from ..leftovers import removing


def keys_dir() -> Path:
    """Where kept servers' keys wait for the operator (``$XDG_STATE_HOME/imagekit/keys``)."""
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "imagekit" / "keys"


class KeyHolder(Protocol):
    """What the temporary key's step works on: a host's job, or a provisioning run (one key for its agents)."""

    keypair: KeyPair | None
    key_file: Path | None
    ssh_key: BoundSSHKey | None
    failed: bool

    @property
    def client(self) -> Client: ...

    @property
    def resource_name(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def keep_on_failure(self) -> bool: ...

    def keep(self) -> bool: ...


K = TypeVar("K", bound=KeyHolder)


class TemporaryKey(Generic[K]):
    name = "temporary SSH key"

    def run(self, s: K) -> None:
        s.keypair = new_ed25519(s.resource_name)
        if s.keep_on_failure:
            s.key_file = save_private(s.keypair, keys_dir() / s.resource_name)
        s.ssh_key = leases.hold(s.client.ssh_keys.create(name=s.resource_name, public_key=s.keypair.public_openssh,
                                                         labels={**s.labels, **leases.label()}))

    def cleanup(self, s: K) -> None:
        if s.ssh_key is not None:
            leases.release(s.ssh_key)
        if s.keep():
            return
        if s.ssh_key is not None:
            with removing("SSH key", s.ssh_key.id, s.ssh_key.name, f"hcloud ssh-key delete {s.ssh_key.id}",
                          s.ssh_key.labels):
                s.client.ssh_keys.delete(s.ssh_key)
        if s.key_file is not None:
            s.key_file.unlink(missing_ok=True)
