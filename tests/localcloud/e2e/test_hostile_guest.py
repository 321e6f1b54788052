"""A hostile snapshot cannot make the host write where it points (issue 11, item 1).

The snapshot's /var/lib/cloud/seed/nocloud is a symlink to a directory that exists on the host.
A server created from it must boot and run its own user data (from the metadata service: the host
writes nothing into a guest's disk, issue 26), and the host directory must stay untouched.
"""

from __future__ import annotations

import os
import secrets
import time

import pytest

from imagekit.host import ssh
from tests.localcloud.conftest import boot_server

pytestmark = pytest.mark.e2e
OWN_USER_DATA = "#cloud-config\nruncmd:\n  - [touch, /root/own-user-data]\n"


def test_a_snapshot_with_a_symlinked_seed_cannot_write_to_the_host(cloud_unchanged, keypair, tmp_path):
    client = cloud_unchanged
    target = tmp_path / f"host-dir-{secrets.token_hex(4)}"  # stands for /etc/cron.d
    target.mkdir()
    source, key = boot_server(client, keypair, "hostile-src")
    conn = ssh.wait_for_ssh(source.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    code, _, err = ssh.run(conn, f"cloud-init status --wait >/dev/null; rm -rf /var/lib/cloud/seed/nocloud && "
                                 f"ln -s {target} /var/lib/cloud/seed/nocloud && truncate -s 0 /etc/machine-id")
    conn.close()
    assert code == 0, err
    snap = source.create_image(description="hostile: seed symlinked to the host")
    snap.action.wait_until_finished(120)
    client.servers.delete(source).wait_until_finished(120)

    clone, _ = boot_server(client, keypair, "hostile-clone", image=snap.image, user_data=OWN_USER_DATA, key=key)
    assert os.listdir(target) == [], "the host wrote the seed through the snapshot's symlink"
    conn = ssh.wait_for_ssh(clone.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    code, out, err = ssh.run(conn, "cloud-init status --wait; test -f /root/own-user-data && echo ran; "
                                   "if test -L /var/lib/cloud/seed/nocloud; then echo still-a-link; fi")
    conn.close()
    assert code == 0, err
    assert "status: done" in out and "ran" in out
    assert "still-a-link" in out  # the host left the guest's disk alone
    client.servers.delete(clone).wait_until_finished(120)
    client.images.delete(snap.image)
    key.delete()
