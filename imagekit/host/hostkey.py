"""Pinned host keys: imagekit makes each server's SSH host key itself (ed25519), hands it to the server in its user
data (cloud-init's ``ssh_keys``; no other host key is made) and keeps its SHA-256 fingerprint on the server as the
label ``host-key``. Every SSH connection then accepts only that key: the run that made the server, and any other
machine (a colleague, CI) that reads the label. Whoever else answers on a server's address gets nothing: the
connection ends before a key of ours authenticates or a byte of a secret is sent.

A server without the label was made before imagekit pinned host keys: it is refused too, with the way out
(``invoke roll --trust-unpinned`` gives an agent a pinned key, trusting its current one once)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hcloud.servers import BoundServer

from ..errors import HostError

LABEL = "host-key"


@dataclass(frozen=True)
class HostKey:
    private_openssh: str
    public_openssh: str  # "ssh-ed25519 AAAA..."
    fingerprint: str  # SHA-256 of the key, unpadded base64url: 43 characters, a valid label value

    def user_data(self) -> str:
        """The cloud-config keys that make it the server's only host key."""
        return ("# imagekit: the server's host key, made by imagekit (its fingerprint is the server's host-key "
                "label); no other is made\nssh_deletekeys: true\nssh_genkeytypes: []\nssh_keys:\n"
                f"  ed25519_private: {json.dumps(self.private_openssh)}\n"
                f"  ed25519_public: {json.dumps(self.public_openssh)}\n")


def new() -> HostKey:
    """A fresh ed25519 host key whose fingerprint can be a label value: Hetzner's values start and end with a letter
    or digit, and base64url may start with '-' or '_' (1 key in 32; its 43rd character is always a letter or
    digit), so such a key is simply made again."""
    while True:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        found = fingerprint(base64.b64decode(public.split()[1]))
        if found[0].isalnum():
            private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                        serialization.NoEncryption()).decode()
            return HostKey(private, public.decode(), found)


def fingerprint(blob: bytes) -> str:
    """The SHA-256 fingerprint of a public key (its SSH wire format) as the label holds it."""
    return base64.urlsafe_b64encode(hashlib.sha256(blob).digest()).rstrip(b"=").decode()


def openssh_form(found: str) -> str:
    """A label's fingerprint as ``ssh-keygen -l`` prints it (``SHA256:`` and standard base64)."""
    return "SHA256:" + found.replace("-", "+").replace("_", "/")


def login_user_data(public_openssh: str) -> str:
    """The cloud-config key that lets a run's own key log in as root for its readiness checks: handed in the user
    data, as the API hands the project's keys, so the run needs no key in the project (two requests fewer); the
    run removes it from the host once the agent is ready. Without its comment: the same length for every key."""
    return ("# imagekit: the provisioning run's key, removed once the host is ready\nssh_authorized_keys:\n"
            f"  - {json.dumps(' '.join(public_openssh.split()[:2]))}\n")


@functools.lru_cache(maxsize=1)
def user_data_bytes() -> int:
    """What a host key and a run's login key add to a server's user data (the same for every ed25519 key): the
    API's 32 KiB limit is checked with them before anything is created."""
    return len(new().user_data().encode()) + len(login_user_data(new().public_openssh).encode())


def with_host_key(user_data: str | None, key: HostKey, login: str | None = None) -> str:
    """``user_data`` (imagekit's own cloud-config, or none) with ``key`` as the server's host key and, when given,
    ``login`` (a public key) allowed to log in as root."""
    added = key.user_data() + (login_user_data(login) if login else "")
    if user_data is None:
        return "#cloud-config\n" + added
    if not user_data.startswith("#cloud-config"):
        raise ValueError("imagekit hands host keys only in its own #cloud-config user data")
    return user_data + ("" if user_data.endswith("\n") else "\n") + added


@dataclass(frozen=True)
class Pin:
    """What an SSH connection accepts: the fingerprint, and how errors name the server."""

    fingerprint: str
    server_id: int
    name: str

    @property
    def server(self) -> str:
        return f"server {self.server_id} ({self.name})"


class HostKeyMismatch(HostError):
    pass


class Unpinned(HostError):
    pass


def pin(server: BoundServer) -> Pin:
    """The server's pin, from its label; Unpinned (naming the way out) when it has none."""
    found = (server.labels or {}).get(LABEL)
    if not found:
        labels = server.labels or {}
        fix = (f"give it one with `invoke roll --trust-unpinned --agent-id {labels['agent-id']}` (a replacement "
               "with a pinned key; --in-place rebuilds the server itself), which trusts its current key once"
               if labels.get("role") == "agent" and labels.get("agent-id") else
               "delete it and make it again with this imagekit")
        raise Unpinned(f"server {server.id} ({server.name}) has no host-key label (it was made before imagekit "
                       "pinned host keys), so imagekit cannot tell it from whoever else answers on its address and "
                       f"does not connect: {fix}")
    assert server.id is not None and server.name is not None, "a server the API listed has an id and a name"
    return Pin(found, server.id, server.name)


def pin_or_trust(server: BoundServer, trust_unpinned: bool) -> Pin | None:
    """The server's pin; None (trust its key this once) for a server without one when the operator said so."""
    if trust_unpinned and not (server.labels or {}).get(LABEL):
        return None
    return pin(server)


class PinnedPolicy(paramiko.MissingHostKeyPolicy):
    """paramiko asks this about every host key (imagekit's clients load no known_hosts): only the pinned one
    passes; any other ends the connection before we authenticate."""

    def __init__(self, expected: Pin):
        self.expected = expected

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = fingerprint(key.asbytes())
        if key.get_name() == "ssh-ed25519" and offered == self.expected.fingerprint:
            return
        raise HostKeyMismatch(
            f"{self.expected.server} at {hostname} offered the host key {openssh_form(offered)} ({key.get_name()}), "
            f"not the one imagekit made for it ({openssh_form(self.expected.fingerprint)}, its host-key label): "
            "refused, nothing was sent. Someone else may be answering on its address, or its host key was "
            "replaced: find out which before you trust it (once you know the host is yours: `hcloud server "
            f"remove-label {self.expected.server_id} {LABEL}`, then `invoke roll --trust-unpinned`)")
