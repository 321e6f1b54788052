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


def add_server(cloud, name: str, labels: dict, *, created: str = "2026-01-01T00:00:00+00:00",
               status: str = "running") -> int:
    """A server record as the API keeps one, with its create action done (no machine behind it)."""
    sid = cloud.store.new_id("servers")
    cloud.store["servers"][sid] = {
        "id": sid, "name": name, "labels": dict(labels), "created": created, "status": status,
        "server_type": "cx23", "location": "fsn1", "image_id": None, "ssh_keys": [], "user_data": None,
        "address": f"10.213.8.{sid % 250 + 1}", "protection": {"delete": False, "rebuild": False}, "locked": False,
        "power": "on", "firewalls": [], "instance": f"unit-{sid}", "private_net": [], "placement_group": None}
    cloud.new_action("create_server", [("server", sid)], status="success")
    return sid
