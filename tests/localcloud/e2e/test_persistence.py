"""State survives `cloud-down`/`cloud-up`: records stay, running servers boot again."""

from __future__ import annotations

import time

import pytest
from hcloud.images import Image
from hcloud.server_types import ServerType

from imagekit.host import ssh
from localcloud import client as control

pytestmark = pytest.mark.e2e


def test_state_survives_restart(cloud_unchanged, keypair):
    client = cloud_unchanged
    key = client.ssh_keys.create(name="persist", public_key=keypair.public_openssh, labels={"keep": "yes"})
    resp = client.servers.create(name="persist", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[key])
    resp.action.wait_until_finished(120)
    assert control.down() is True
    assert control.current() is None
    control.up(progress=lambda m: None)
    assert client.ssh_keys.get_by_name("persist").labels == {"keep": "yes"}
    server = client.servers.get_by_id(resp.server.id)
    conn = ssh.wait_for_ssh(server.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    assert ssh.run(conn, "hostname")[1].strip() == "persist"
    conn.close()
    client.servers.delete(server).wait_until_finished(120)
    key.delete()
