"""Pinned host keys without a cloud: the key imagekit makes for a server, its fingerprint as a Hetzner label value,
the user data that makes it the server's only host key, and the policy that refuses any other key (naming the
server and both fingerprints). A server answering with another key, for real: tests/imagekit/e2e/test_team.py."""

from __future__ import annotations

import base64
import hashlib
import io
import re

import paramiko
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hcloud.images import Image
from hcloud.server_types import ServerType

from imagekit.cloud.spec import ServerSpec
from imagekit.host import hostkey
from imagekit.host.keys import new_ed25519

# Hetzner's label values (as the local cloud checks them: localcloud/api/labels.py)
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")


def test_a_host_keys_fingerprint_is_its_sha256_and_a_label_value():
    for _ in range(200):  # 1 key in 32 would start with '-' or '_': made again
        key = hostkey.new()
        blob = base64.b64decode(key.public_openssh.split()[1])
        assert key.public_openssh.startswith("ssh-ed25519 ")
        assert key.fingerprint == base64.urlsafe_b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        assert len(key.fingerprint) == 43 and LABEL_VALUE.fullmatch(key.fingerprint)
    loaded = paramiko.Ed25519Key(data=blob)
    assert hostkey.fingerprint(loaded.asbytes()) == key.fingerprint
    assert hostkey.openssh_form(key.fingerprint) == "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode(
        ).rstrip("=")


def test_the_user_data_makes_it_the_only_host_key():
    key = hostkey.new()
    merged = yaml.safe_load(hostkey.with_host_key("#cloud-config\nruncmd:\n  - [echo, hi]", key))
    assert merged["runcmd"] == [["echo", "hi"]]
    assert merged["ssh_deletekeys"] is True and merged["ssh_genkeytypes"] == []
    assert merged["ssh_keys"] == {"ed25519_private": key.private_openssh, "ed25519_public": key.public_openssh}
    alone = hostkey.with_host_key(None, key)
    assert alone.startswith("#cloud-config\n") and yaml.safe_load(alone)["ssh_keys"]["ed25519_public"]
    login = new_ed25519("imagekit-provision-x").public_openssh
    with_login = hostkey.with_host_key("#cloud-config\nruncmd:\n  - [echo, hi]", key, login)
    assert yaml.safe_load(with_login)["ssh_authorized_keys"] == [" ".join(login.split()[:2])]
    assert len(with_login.encode()) - len("#cloud-config\nruncmd:\n  - [echo, hi]\n") == hostkey.user_data_bytes()
    with pytest.raises(ValueError):
        hostkey.with_host_key("#!/bin/sh\necho hi\n", key)


def test_the_spec_hands_the_key_in_the_user_data_and_its_fingerprint_as_a_label():
    key = hostkey.new()
    spec = ServerSpec(server_type=ServerType(name="cx23"), image=Image(id=1), labels={"role": "job"},
                      user_data="#cloud-config\n", host_key=key)
    assert spec.server_labels == {"role": "job", "host-key": key.fingerprint}
    assert yaml.safe_load(spec.create_arguments(None)["user_data"])["ssh_keys"]["ed25519_public"] == key.public_openssh
    bare = ServerSpec(server_type=ServerType(name="cx23"), image=Image(id=1))
    assert bare.create_arguments(None)["user_data"] is None and bare.server_labels == {}


def paramiko_key() -> paramiko.PKey:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


def test_only_the_pinned_key_passes_and_a_mismatch_names_the_server_and_both_fingerprints():
    made = hostkey.new()
    ours = paramiko.Ed25519Key.from_private_key(io.StringIO(made.private_openssh))
    pin = hostkey.Pin(made.fingerprint, 42, "imagekit-agent-a")
    policy = hostkey.PinnedPolicy(pin)
    policy.missing_host_key(paramiko.SSHClient(), "10.0.0.2", ours)  # no exception: it is the server's key
    impostor = paramiko_key()
    with pytest.raises(hostkey.HostKeyMismatch) as exc:
        policy.missing_host_key(paramiko.SSHClient(), "10.0.0.2", impostor)
    message = str(exc.value)
    assert "server 42 (imagekit-agent-a) at 10.0.0.2" in message
    assert hostkey.openssh_form(hostkey.fingerprint(impostor.asbytes())) in message
    assert hostkey.openssh_form(made.fingerprint) in message and "nothing was sent" in message
    assert "hcloud server remove-label 42 host-key" in message


def test_a_server_without_the_label_is_refused_unless_trusted_once():
    class Server:
        id, name = 7, "imagekit-agent-old"
        labels = {"role": "agent", "agent-id": "imagekit-agent-old"}

    with pytest.raises(hostkey.Unpinned, match="invoke roll --trust-unpinned --agent-id imagekit-agent-old"):
        hostkey.pin(Server())
    assert hostkey.pin_or_trust(Server(), trust_unpinned=True) is None
    Server.labels = {**Server.labels, "host-key": "abc"}
    assert hostkey.pin_or_trust(Server(), trust_unpinned=True) == hostkey.Pin("abc", 7, "imagekit-agent-old")
