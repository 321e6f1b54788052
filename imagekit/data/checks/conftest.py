"""The host the checks describe, reached only if it shows the host key imagekit made for it: testinfra's paramiko
backend takes any key, so its connection is made by imagekit's own SSH module, pinned (run_checks passes the
host, the key file and the pin in IMAGEKIT_CHECK_*)."""

from __future__ import annotations

import functools
import os

import paramiko
import pytest
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from imagekit.host import ssh
from imagekit.host.hostkey import Pin
from imagekit.host.keys import load_ed25519


class PinnedBackend(ParamikoBackend):
    @functools.cached_property
    def client(self) -> paramiko.SSHClient:  # also when testinfra connects again after a lost connection
        env = os.environ
        pin = Pin(env["IMAGEKIT_CHECK_PIN"], int(env["IMAGEKIT_CHECK_SERVER_ID"]), env["IMAGEKIT_CHECK_SERVER_NAME"])
        return ssh.connect(self.host.name, load_ed25519(env["IMAGEKIT_CHECK_KEY"]), pin=pin, timeout=self.timeout)


@pytest.fixture(scope="module")
def host() -> Host:
    address = os.environ["IMAGEKIT_CHECK_HOST"]  # an IPv6-only host's in brackets: testinfra reads a colon as a port
    return Host(PinnedBackend(f"root@[{address}]" if ":" in address else f"root@{address}", timeout=30))
