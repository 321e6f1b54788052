"""Resources as the API shows them: the records' derived fields (a server's type, datacenter, image)."""

from __future__ import annotations

from ..engine import catalog
from ..engine.cloud import Cloud


def server_json(cloud: Cloud, s: dict) -> dict:
    stype = catalog.SERVER_TYPE_BY_NAME[s["server_type"]]
    location = catalog.LOCATION_BY_NAME[s["location"]]
    return {
        "id": s["id"], "name": s["name"], "status": s["status"], "created": s["created"],
        "public_net": {
            "ipv4": {"id": s["id"], "ip": s["address"], "blocked": False, "dns_ptr": f"static.{s['address']}.local"},
            "ipv6": None, "floating_ips": [],
            "firewalls": [{"id": f, "status": "applied"} for f in s["firewalls"]],
        },
        "private_net": [], "server_type": stype,
        "datacenter": catalog.datacenter_json(catalog.DATACENTER_BY_LOCATION[s["location"]]),
        "location": location, "image": cloud.get_image_of(s), "iso": None, "rescue_enabled": False,
        "locked": s["locked"], "backup_window": None, "outgoing_traffic": 0, "ingoing_traffic": 0,
        "included_traffic": 21990232555520, "protection": s["protection"], "labels": s["labels"],
        "volumes": [], "load_balancers": [], "primary_disk_size": stype["disk"], "placement_group": None,
    }


def firewall_json(fw: dict) -> dict:
    return {**fw, "applied_to": [{"type": "server", "server": {"id": sid}} for sid in fw["applied_to"]]}
