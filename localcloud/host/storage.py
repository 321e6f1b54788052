"""Machine disks: btrfs subvolumes in a loop-mounted pool, plain copies as a fallback.

A server's disk is a writable snapshot of an image; ``create_image`` is a read-only
snapshot of a disk. On btrfs both take milliseconds; without btrfs we copy (seconds).

A guest writes at most its server type's disk size into its disk (``diskquota``: btrfs simple quotas; writes past
it fail with EDQUOT); snapshots and clones stay as fast (~0.01 s). The pool is thin: the limits together may
exceed it, so guests together can still fill it. Plain copies (no btrfs) have no quota: a guest can fill the
filesystem the local cloud's state is on.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..paths import Layout
from . import diskquota
from .hostcmd import HostCommandError, run

log = logging.getLogger("localcloud")

POOL_SIZE = os.environ.get("IMAGEKIT_LOCALCLOUD_POOL_SIZE", "60G")


class Storage:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.btrfs = False
        self.quotas = False

    def ensure_pool(self) -> None:
        """Mount the btrfs pool (creating it the first time); fall back to a directory."""
        pool = self.layout.pool
        pool.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(pool):
            self.btrfs = run(["stat", "-f", "-c", "%T", str(pool)]).stdout.strip() == "btrfs"
        else:
            try:
                img = self.layout.pool_image
                if not img.exists():  # formatted under another name first: a failed mkfs leaves no half-made pool
                    fresh = img.with_name(img.name + ".new")
                    run(["truncate", "-s", POOL_SIZE, str(fresh)])
                    run(["mkfs.btrfs", "-q", str(fresh)])
                    fresh.rename(img)
                run(["mount", "-o", "loop,compress=zstd:1,noatime", str(img), str(pool)])
                self.btrfs = True
            except (HostCommandError, FileNotFoundError) as exc:
                log.warning("btrfs pool unavailable (%s); disks will be plain copies", exc)
                self.btrfs = False
        if self.btrfs:
            self.quotas = diskquota.enable(pool)  # also on a pool made before quotas
            if self.quotas:
                diskquota.forget(pool)  # groups of disks deleted while the last run ended
        for d in (self.layout.base_images, self.layout.disks, self.layout.snapshots):
            d.mkdir(parents=True, exist_ok=True)

    def new_volume(self, path: Path) -> None:
        if self.btrfs:
            run(["btrfs", "subvolume", "create", str(path)])
        else:
            path.mkdir(parents=True)

    def limit(self, disk: Path, size: int) -> None:
        """At most ``size`` bytes written into the disk; nothing without quotas (plain copies, an old kernel)."""
        if self.quotas and self._is_subvolume(disk):
            diskquota.limit(self.layout.pool, disk, size)

    def clone(self, src: Path, dst: Path, *, readonly: bool = False) -> None:
        if self.btrfs and self._is_subvolume(src):
            cmd = ["btrfs", "subvolume", "snapshot"] + (["-r"] if readonly else []) + [str(src), str(dst)]
            run(cmd)
        else:
            run(["cp", "-a", "--reflink=auto", str(src), str(dst)], timeout=1800)

    def delete(self, path: Path) -> None:
        if not path.exists():
            return
        if self.btrfs and self._is_subvolume(path):
            group = diskquota.release(self.layout.pool, path) if self.quotas else None
            # Nested subvolumes (docker's btrfs driver inside a guest) must go first, deepest first.
            listing = run(["btrfs", "subvolume", "list", "-o", "--sort=-path", str(path)], check=False).stdout
            for sub in nested_subvolumes(listing, self.layout.pool, path):
                run(["btrfs", "property", "set", "-ts", str(sub), "ro", "false"], check=False)
                run(["btrfs", "subvolume", "delete", str(sub)], check=False)
            run(["btrfs", "property", "set", "-ts", str(path), "ro", "false"], check=False)
            deleted = run(["btrfs", "subvolume", "delete", str(path)], check=False).returncode == 0
            if group:
                diskquota.forget(self.layout.pool, group)
            if deleted:
                return
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            run(["rm", "-rf", "--one-file-system", str(path)])

    def size_bytes(self, path: Path) -> int:
        out = run(["du", "-sx", "--block-size=1", str(path)], check=False).stdout.split()
        return int(out[0]) if out else 0

    def _is_subvolume(self, path: Path) -> bool:
        return run(["btrfs", "subvolume", "show", str(path)], check=False).returncode == 0


def nested_subvolumes(listing: str, pool: Path, disk: Path) -> list[Path]:
    """The subvolumes in ``btrfs subvolume list -o`` output that really lie inside ``disk``, deepest first.

    The names are the guest's choice: a name with a newline can forge a line naming another disk or
    snapshot, and a path through a symlink leads anywhere on the host. Only a path whose resolved form
    is itself (no symlink on the way) and lies below the disk's resolved path is kept.
    """
    inside = os.path.realpath(disk) + os.sep
    kept = []
    for line in listing.splitlines():
        if " path " not in line:
            continue
        candidate = os.path.normpath(os.path.join(pool, line.split(" path ", 1)[1]))
        if os.path.realpath(candidate) == candidate and candidate.startswith(inside) and os.path.isdir(candidate):
            kept.append(Path(candidate))
    return sorted(kept, key=lambda p: len(p.parts), reverse=True)
