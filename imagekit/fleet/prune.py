"""``prune-snapshots``: keep the newest N snapshots of each profile and architecture (``build-snapshot --arch
x86,arm`` makes one of each: an x86 build must not push the arm snapshots out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hcloud.images import BoundImage

from ..cloud import api
from ..errors import InputError
from ..target import Target


def prune_snapshots(target: Target, keep: int, profile: str | None, progress: Callable[[str], None],
                    dry_run: bool = False) -> dict[str, Any]:
    """Keep the newest ``keep`` snapshots of each profile (or of ``profile``) and architecture; delete the older
    ones. ``kept`` is keyed ``PROFILE`` for x86 (as before there were two) and ``PROFILE/arm`` for arm."""
    if keep < 1:
        raise InputError(f"--keep {keep}: keep at least 1 snapshot per profile (delete the last one by hand)")
    client = api.connect(target)
    sel = api.selector(**({"profile": profile} if profile else {}))
    by_profile: defaultdict[str, list[BoundImage]] = defaultdict(list)
    for image in client.images.get_all(type=["snapshot"], label_selector=sel, sort=["created:desc"]):
        name = (image.labels or {}).get("profile", "")
        by_profile[name if image.architecture in (None, "x86") else f"{name}/{image.architecture}"].append(image)
    deleted = []
    for name, images in sorted(by_profile.items()):
        for image in images[keep:]:
            progress(f"{'would delete' if dry_run else 'deleting'} snapshot {image.id} ({image.description}, "
                     f"profile {name}, created {image.created:%Y-%m-%d %H:%M})")
            if not dry_run:
                image.delete()
            deleted.append(image.id)
    return {"deleted": deleted, "kept": {name: [i.id for i in images[:keep]] for name, images in by_profile.items()},
            "dry_run": dry_run}
