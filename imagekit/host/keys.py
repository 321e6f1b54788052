"""SSH key pairs: temporary ones made in memory, the operator's own read from a file (ed25519, OpenSSH)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import InputError


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str
    public_openssh: str


def new_ed25519(comment: str = "imagekit") -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, f"{public} {comment}")


def save_private(pair: KeyPair, path: Path) -> Path:
    """Write the private key where only its owner can read it (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pair.private_openssh)
    return path


class KeyFileError(InputError):
    pass


def load_ed25519(path: str) -> KeyPair:
    """The operator's own key (SSH_PRIVATE_KEY_PATH): an unencrypted ed25519 key in OpenSSH format."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise KeyFileError(f"cannot read SSH_PRIVATE_KEY_PATH {path}: {exc.strerror}") from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"SSH_PRIVATE_KEY_PATH {path} is not an unencrypted OpenSSH private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"SSH_PRIVATE_KEY_PATH {path} is not an ed25519 key: use `ssh-keygen -t ed25519`")
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, public)
