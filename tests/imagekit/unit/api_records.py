"""Records put straight into the in-process API's store (no disk, nothing boots from them)."""

from __future__ import annotations


def add_snapshot(cloud, *, architecture: str = "x86", status: str = "available", profile: str = "agent",
                 created: str = "2026-01-01T00:00:00+00:00") -> int:
    """A snapshot record as the API keeps one (no disk behind it: nothing boots from it here)."""
    iid = cloud.store.new_id("images")
    cloud.store["images"][iid] = {
        "id": iid, "type": "snapshot", "status": status, "name": None, "description": f"unit-{iid}",
        "image_size": 0.8, "disk_size": 40, "created": created, "created_from": None, "bound_to": None,
        "os_flavor": "debian", "os_version": "12", "rapid_deploy": False, "protection": {"delete": False},
        "deprecated": None, "deleted": None, "labels": {"managed-by": "imagekit", "profile": profile},
        "architecture": architecture}
    return iid
