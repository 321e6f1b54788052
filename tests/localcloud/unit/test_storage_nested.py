"""Deleting a disk deletes only subvolumes inside it, whatever names the guest gave them (issue 11, item 3)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from localcloud.host.storage import Storage, nested_subvolumes
from localcloud.paths import Layout


def test_only_real_paths_inside_the_disk_are_taken(tmp_path):
    pool = tmp_path / "pool"
    disk = pool / "disks" / "7"
    (disk / "var/lib/docker/btrfs/subvolumes/a").mkdir(parents=True)
    (disk / "var/lib/docker/btrfs/subvolumes/a/nested").mkdir()
    (pool / "snapshots" / "200000001").mkdir(parents=True)
    (tmp_path / "host-etc").mkdir()
    (disk / "escape").symlink_to(tmp_path / "host-etc")
    (disk / "to-snapshot").symlink_to(pool / "snapshots")
    listing = "\n".join([
        "ID 261 gen 20 top level 5 path disks/7/var/lib/docker/btrfs/subvolumes/a",
        "ID 262 gen 21 top level 261 path disks/7/var/lib/docker/btrfs/subvolumes/a/nested",
        # a name with a newline forges a line for another resource's subvolume:
        "ID 263 gen 22 top level 5 path disks/7/x",
        "ID 1 gen 1 top level 5 path snapshots/200000001",
        "ID 264 gen 23 top level 5 path disks/7/../../snapshots/200000001",
        "ID 265 gen 24 top level 5 path disks/7/escape",
        "ID 266 gen 25 top level 5 path disks/7/to-snapshot/200000001",
        "ID 267 gen 26 top level 5 path disks/7",
        "ID 268 gen 27 top level 5 path disks/70/sub",
    ])
    assert nested_subvolumes(listing, pool, disk) == [
        disk / "var/lib/docker/btrfs/subvolumes/a/nested",
        disk / "var/lib/docker/btrfs/subvolumes/a",
    ]


needs_root_btrfs = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mkfs.btrfs"),
                                      reason="needs root and btrfs-progs for a loop-mounted btrfs")


@pytest.fixture
def btrfs_storage(tmp_path):
    layout = Layout(tmp_path / "localcloud")
    layout.root.mkdir()
    subprocess.run(["truncate", "-s", "200M", str(layout.pool_image)], check=True)
    subprocess.run(["mkfs.btrfs", "-q", str(layout.pool_image)], check=True)
    storage = Storage(layout)
    storage.ensure_pool()
    assert storage.btrfs
    yield storage
    subprocess.run(["umount", str(layout.pool)], check=False)


@needs_root_btrfs
def test_a_guest_named_subvolume_cannot_take_another_subvolume_with_it(btrfs_storage):
    pool = btrfs_storage.layout.pool
    victim, guest = pool / "victim", btrfs_storage.layout.disks / "2"
    btrfs_storage.new_volume(victim)
    btrfs_storage.new_volume(guest)
    (guest / "var/lib/docker").mkdir(parents=True)
    # The guest names a nested subvolume so that the listing shows a forged line for the victim.
    forged = guest / "var/lib/docker" / "x\nID 1 gen 1 top level 5 path victim"
    for sub in (forged, forged / "inner"):
        subprocess.run(["btrfs", "subvolume", "create", str(sub)], check=True, capture_output=True)
    btrfs_storage.delete(guest)
    assert not guest.exists()
    assert victim.is_dir(), "deleting a disk deleted a subvolume outside it"
