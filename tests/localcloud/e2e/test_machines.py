"""Real machines through the official hcloud SDK: user data, SSH, snapshots, clones, power."""

from __future__ import annotations

import time

import paramiko
import pytest
from hcloud.images import Image
from hcloud.server_types import ServerType

from imagekit.host import ssh
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

USER_DATA = """#cloud-config
write_files:
  - path: /root/from-user-data
    content: |
      written by cloud-init from user data
runcmd:
  - [sh, -c, 'echo ran > /root/runcmd-ran']
"""
FACTS = ("cloud-init status --wait >/dev/null; cloud-init status; cat /etc/machine-id; "
         "cat /etc/ssh/ssh_host_ed25519_key.pub; hostname; cat /root/from-user-data; "
         "cat /var/lib/cloud/data/instance-id; cat /root/.ssh/authorized_keys")


def facts(client_ssh) -> list[str]:
    code, out, err = ssh.run(client_ssh, FACTS)
    assert code == 0, err
    return out.splitlines()


def test_server_snapshot_clone_roundtrip(cloud_unchanged, keypair, record_property):
    client = cloud_unchanged
    key = client.ssh_keys.create(name="e2e-key", public_key=keypair.public_openssh, labels={"test": "e2e"})
    t0 = time.monotonic()
    created = client.servers.create(name="e2e-base", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    ssh_keys=[key], user_data=USER_DATA, labels={"test": "e2e"})
    assert created.root_password is None  # keys given: no password, as on Hetzner
    created.action.wait_until_finished(120)
    base = client.servers.get_by_id(created.server.id)
    assert base.status == "running"
    conn = ssh.wait_for_ssh(base.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    base_ssh = time.monotonic() - t0
    status, machine_id, host_key, hostname, user_file, instance_id, authorized = facts(conn)[:7]
    assert status == "status: done"
    assert hostname == "e2e-base"
    assert user_file == "written by cloud-init from user data"
    assert authorized.strip() == keypair.public_openssh.strip()
    assert len(machine_id) == 32
    # As on Hetzner, a snapshot copies the disk as it is: an image meant for cloning empties its
    # machine-id first (build-snapshot's clean step does this); host keys are cloud-init's job.
    assert ssh.run(conn, "truncate -s 0 /etc/machine-id")[0] == 0
    conn.close()

    snap = base.create_image(description="e2e snapshot", labels={"test": "e2e"})
    snap.action.wait_until_finished(300)
    image = client.images.get_by_id(snap.image.id)
    assert (image.type, image.status, image.description) == ("snapshot", "available", "e2e snapshot")
    assert image.image_size and image.image_size > 0.1
    assert image.created_from.id == base.id

    t1 = time.monotonic()
    clone_resp = client.servers.create(name="e2e-clone", server_type=ServerType(name="cx23"), image=image,
                                       ssh_keys=[key], labels={"test": "e2e"})
    clone_resp.action.wait_until_finished(120)
    clone = client.servers.get_by_id(clone_resp.server.id)
    assert clone.public_net.ipv4.ip != base.public_net.ipv4.ip
    conn = ssh.wait_for_ssh(clone.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    clone_ssh = time.monotonic() - t1
    c_status, c_machine_id, c_host_key, c_hostname, c_user_file, c_instance_id, _ = facts(conn)[:7]
    conn.close()
    assert c_status == "status: done"
    assert c_hostname == "e2e-clone"
    assert c_user_file == user_file  # the clone really boots the snapshot's disk
    assert c_instance_id != instance_id  # cloud-init saw a new instance ...
    assert c_machine_id != machine_id  # ... and the clone is a machine of its own
    assert c_host_key != host_key
    record_property("base_create_to_ssh_s", round(base_ssh, 2))
    record_property("clone_create_to_ssh_s", round(clone_ssh, 2))
    print(f"\ncreate-to-SSH: base {base_ssh:.2f} s, clone {clone_ssh:.2f} s")

    for server in (clone, base):
        client.servers.delete(server).wait_until_finished(120)
    image.delete()
    key.delete()


def test_power_actions_act_on_the_machine(cloud_unchanged, keypair):
    client = cloud_unchanged
    key = client.ssh_keys.create(name="e2e-power", public_key=keypair.public_openssh)
    resp = client.servers.create(name="e2e-power", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[key])
    resp.action.wait_until_finished(120)
    server = client.servers.get_by_id(resp.server.id)
    ip = server.public_net.ipv4.ip

    def boot_id():
        conn = ssh.wait_for_ssh(ip, keypair, pin=None, deadline=time.monotonic() + 120)
        try:
            return ssh.run(conn, "cat /proc/sys/kernel/random/boot_id; cat /proc/1/stat | cut -d' ' -f22")[1]
        finally:
            conn.close()

    def rebooted_boot_id():
        """None while the reboot drops the connection (a login can land on the sshd being stopped)."""
        try:
            return boot_id()
        except (EOFError, OSError, paramiko.SSHException):
            return None

    first = boot_id()
    # shutdown finishes at once, like Hetzner's ACPI request; the server is off a little later.
    server.shutdown().wait_until_finished(60)
    wait_for(lambda: client.servers.get_by_id(server.id).status == "off", 60, what="server off after shutdown")
    with pytest.raises(OSError):
        ssh.connect(ip, keypair, pin=None, timeout=2)
    server.power_on().wait_until_finished(60)
    assert client.servers.get_by_id(server.id).status == "running"
    second = boot_id()
    assert second != first
    server.reboot().wait_until_finished(60)
    wait_for(lambda: rebooted_boot_id() not in (None, second), 90, interval=1, what="a new boot after reboot")
    server.reset().wait_until_finished(60)
    server.power_off().wait_until_finished(60)
    assert client.servers.get_by_id(server.id).status == "off"

    server.change_protection(delete=True).wait_until_finished(10)
    from hcloud import APIException

    with pytest.raises(APIException) as exc:
        server.delete()
    assert exc.value.code == "protected"
    server.change_protection(delete=False).wait_until_finished(10)
    rebuilt = server.rebuild(Image(name="debian-12"))
    rebuilt.action.wait_until_finished(120)
    client.servers.delete(server).wait_until_finished(120)
    key.delete()
