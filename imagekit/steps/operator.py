"""The operator's own SSH key: the key in the project (HETZNER_SSH_KEY_ID) and its private half
(SSH_PRIVATE_KEY_PATH), checked to match. Provisioning checks readiness with it, pool hosts carry only it, a
roll reads the old hosts with it, status, update, pool drain and gc reach hosts with its private half: found once,
the same way for each."""

from __future__ import annotations

from typing import Literal, overload

from hcloud import Client
from hcloud.ssh_keys import BoundSSHKey

from .. import settings
from ..cloud import api, lookups
from ..errors import InputError
from ..host.keys import KeyPair, load_ed25519


def operator_keys(client: Client, why: str) -> tuple[BoundSSHKey, KeyPair]:
    """The operator's key in the project and its private half, both required: ``why`` says what needs them."""
    ident, path = settings.get("HETZNER_SSH_KEY_ID"), settings.get("SSH_PRIVATE_KEY_PATH")
    if not ident or not path:
        raise InputError(f"{why}: set HETZNER_SSH_KEY_ID (the key in the project) and SSH_PRIVATE_KEY_PATH (its "
                         "private half)")
    key = lookups.ssh_key(client, ident)
    return key, own_key(path, key)


def own_key(path: str, operator_key: BoundSSHKey | None) -> KeyPair:
    """The operator's private key: readiness checks use it instead of a temporary key."""
    return matching(load_ed25519(path), operator_key, f"SSH_PRIVATE_KEY_PATH {path}")


def matching(pair: KeyPair, operator_key: BoundSSHKey | None, what: str) -> KeyPair:
    if operator_key is None or \
            api.known(operator_key.public_key, "the SSH key's public key").split()[1] != pair.public_openssh.split()[1]:
        raise InputError(f"{what} is not the private half of HETZNER_SSH_KEY_ID: set HETZNER_SSH_KEY_ID to the "
                         "Hetzner key made from its public key")
    return pair


@overload
def operator_key(required: Literal[True], why: str) -> KeyPair: ...


@overload
def operator_key(required: bool, why: str) -> KeyPair | None: ...


def operator_key(required: bool, why: str) -> KeyPair | None:
    """SSH_PRIVATE_KEY_PATH: the private half of HETZNER_SSH_KEY_ID, the one key left on ready hosts."""
    path = settings.get("SSH_PRIVATE_KEY_PATH")
    if path:
        return load_ed25519(path)
    if required:
        raise InputError(f"SSH_PRIVATE_KEY_PATH is not set: {why} over SSH with your key (the private half of "
                         "HETZNER_SSH_KEY_ID); set it to that key's file")
    return None
