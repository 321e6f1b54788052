"""A disk's size limit in the btrfs pool: btrfs "simple quotas" (kernel 6.7), one quota group per disk.

Each disk gets a level-1 qgroup ``1/<its subvolume id>`` holding its own qgroup, with the limit. Simple quotas
charge each extent to the subvolume that wrote it, and put a subvolume created inside a disk (Docker's btrfs
driver makes one per layer, a guest may make its own) into the disk's groups as well: what a guest writes counts,
wherever in its disk, and the image its disk was cloned from does not. Writes past the limit fail with EDQUOT.

Why not full qgroups (``btrfs quota enable``): they track every extent's sharing, and the kernel stops counting
when they become inconsistent, which deleting a disk of some size does (``drop_subtree_threshold``): measured
here, a guest then wrote 24 GiB past a 1 GiB limit. Simple quotas never need a rescan.

Left open: a guest that creates a subvolume with an explicit (empty) list of groups to inherit, by the raw
ioctl, keeps that subvolume out of its group; and the pool is thin (see ``storage``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
from pathlib import Path

from .hostcmd import HostCommandError, run

log = logging.getLogger("localcloud")

BTRFS_IOC_QUOTA_CTL = 0xC0109428  # _IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args { u64 cmd, status; })
QUOTA_CTL_DISABLE, QUOTA_CTL_ENABLE_SIMPLE = 2, 4


def mode(pool: Path) -> str:
    """"squota", "qgroup" (full) or "off"."""
    uuid = run(["findmnt", "-no", "UUID", str(pool)]).stdout.strip()
    try:
        return Path(f"/sys/fs/btrfs/{uuid}/qgroups/mode").read_text().strip()
    except OSError:
        return "off"


def enable(pool: Path) -> bool:
    """Simple quotas on the pool (a pool with full qgroups is switched); False where the kernel has none."""
    current = mode(pool)
    if current == "squota":
        return True
    try:
        if current != "off":
            _quota_ctl(pool, QUOTA_CTL_DISABLE)
        _quota_ctl(pool, QUOTA_CTL_ENABLE_SIMPLE)
    except OSError as exc:
        log.warning("no disk quotas: btrfs simple quotas are unavailable (%s; kernel 6.7 or later has them)", exc)
        return False
    return True


def _quota_ctl(pool: Path, cmd: int) -> None:
    fd = os.open(pool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_QUOTA_CTL, struct.pack("QQ", cmd, 0))
    finally:
        os.close(fd)


def subvolume_id(disk: Path) -> str:
    return run(["btrfs", "inspect-internal", "rootid", str(disk)]).stdout.strip()


def limit(pool: Path, disk: Path, size: int) -> None:
    """At most ``size`` bytes written into ``disk`` (its nested subvolumes included); idempotent."""
    sid = subvolume_id(disk)
    gid, own = f"1/{sid}", f"0/{sid}"
    run(["btrfs", "qgroup", "create", gid, str(pool)], check=False)  # exists from an earlier boot: fine
    assign = run(["btrfs", "qgroup", "assign", own, gid, str(pool)], check=False)
    if assign.returncode != 0 and "File exists" not in assign.stderr:
        raise HostCommandError(f"btrfs qgroup assign {own} {gid}: {assign.stderr.strip()}")
    run(["btrfs", "qgroup", "limit", str(size), gid, str(pool)])


def release(pool: Path, disk: Path) -> str:
    """Lift the disk's limit before it is deleted (a delete needs room in its group, and a full disk has none);
    returns its group, for ``forget`` once the disk is gone."""
    gid = f"1/{subvolume_id(disk)}"
    run(["btrfs", "qgroup", "limit", "none", gid, str(pool)], check=False)
    return gid


def forget(pool: Path, gid: str | None = None) -> None:
    """Destroy ``gid``, or every level-1 group left without members (their disks deleted), best effort: a group
    whose members btrfs still drops stays until the next start."""
    if gid is None:
        run(["btrfs", "qgroup", "clear-stale", str(pool)], check=False)  # deleted disks' own groups, once empty
        out = run(["btrfs", "qgroup", "show", "-c", "--raw", str(pool)], check=False).stdout.splitlines()
        gids = [line.split()[0] for line in out if line.startswith("1/") and line.split()[3] == "-"]  # no child
    else:
        gids = [gid]
    for g in gids:
        run(["btrfs", "qgroup", "destroy", g, str(pool)], check=False)
