"""The host writes a server's NoCloud seed into its disk without following the guest's symlinks
(issue 11, item 1: a snapshot whose seed directory points at /etc/cron.d)."""

from __future__ import annotations

import os

import pytest

from localcloud.guests.machines import Seed

SEED = Seed(instance_id="i-1-abc", hostname="web-1", address="10.213.7.10", ssh_keys=["ssh-ed25519 AAAA k"],
            user_data="#cloud-config\nruncmd: [[touch, /root/ran]]\n")


def assert_seed_written(disk):
    seed = disk / "var/lib/cloud/seed/nocloud"
    for part in ("var", "var/lib", "var/lib/cloud", "var/lib/cloud/seed", "var/lib/cloud/seed/nocloud"):
        assert not (disk / part).is_symlink() and (disk / part).is_dir()
    assert (seed / "user-data").read_text() == SEED.user_data
    assert oct((seed / "user-data").stat().st_mode & 0o777) == "0o600"
    assert "instance-id: i-1-abc" in (seed / "meta-data").read_text()
    assert "10.213.7.10/24" in (seed / "network-config").read_text()


@pytest.mark.parametrize("link", ["var/lib/cloud/seed/nocloud", "var/lib/cloud", "var"])
def test_a_symlinked_seed_path_is_replaced_not_followed(tmp_path, link):
    disk, host_dir = tmp_path / "disk", tmp_path / "host-cron.d"
    host_dir.mkdir()
    (disk / link).parent.mkdir(parents=True, exist_ok=True)
    (disk / link).symlink_to(host_dir)
    SEED.write(disk)
    assert os.listdir(host_dir) == [], "the host wrote through the guest's symlink"
    assert_seed_written(disk)


def test_symlinked_seed_files_are_replaced_not_followed(tmp_path):
    disk, host_file = tmp_path / "disk", tmp_path / "host-passwd"
    host_file.write_text("root:x:0:0\n")
    seed = disk / "var/lib/cloud/seed/nocloud"
    seed.mkdir(parents=True)
    (seed / "user-data").symlink_to(host_file)
    (seed / "meta-data").mkdir()  # a directory where a file belongs
    SEED.write(disk)
    assert host_file.read_text() == "root:x:0:0\n"
    assert_seed_written(disk)


def test_a_fresh_disk_gets_its_seed(tmp_path):
    (tmp_path / "disk").mkdir()
    SEED.write(tmp_path / "disk")
    assert_seed_written(tmp_path / "disk")
