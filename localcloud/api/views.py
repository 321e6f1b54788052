"""Resources as the API shows them: the records' derived fields (a server's type, datacenter, image, addresses,
placement group; a network's and a placement group's servers)."""

from __future__ import annotations

from ..engine import catalog
from ..engine.cloud import Cloud


def server_json(cloud: Cloud, s: dict) -> dict:
    stype = catalog.SERVER_TYPE_BY_NAME[s["server_type"]]
    location = catalog.LOCATION_BY_NAME[s["location"]]
    ipv4, ipv6 = (cloud.store["primary_ips"].get(s.get(key) or 0) for key in ("ipv4_id", "ipv6_id"))
    return {
        "id": s["id"], "name": s["name"], "status": s["status"], "created": s["created"],
        "public_net": {
            "ipv4": ipv4 and {"id": ipv4["id"], "ip": ipv4["ip"], "blocked": False,
                              "dns_ptr": next((p["dns_ptr"] for p in ipv4["dns_ptr"]), "")},
            "ipv6": ipv6 and {"id": ipv6["id"], "ip": ipv6["ip"], "blocked": False, "dns_ptr": ipv6["dns_ptr"]},
            "floating_ips": [], "firewalls": [{"id": f, "status": "applied"} for f in s["firewalls"]],
        },
        "private_net": [dict(e) for e in s["private_net"]], "server_type": stype,
        "datacenter": catalog.datacenter_json(catalog.DATACENTER_BY_LOCATION[s["location"]]),
        "location": location, "image": cloud.get_image_of(s), "iso": None, "rescue_enabled": False,
        "locked": s["locked"], "backup_window": None, "outgoing_traffic": 0, "ingoing_traffic": 0,
        "included_traffic": 21990232555520, "protection": s["protection"], "labels": s["labels"],
        "volumes": [], "load_balancers": [], "primary_disk_size": stype["disk"],
        "placement_group": placement_group_json(cloud, cloud.store["placement_groups"][s["placement_group"]])
        if s["placement_group"] else None,
    }


def primary_ip_json(p: dict) -> dict:
    return {**p, "location": catalog.LOCATION_BY_NAME[p["location"]],
            "datacenter": catalog.datacenter_json(catalog.DATACENTER_BY_LOCATION[p["location"]])}


def firewall_json(fw: dict) -> dict:
    return {**fw, "applied_to": [{"type": "server", "server": {"id": sid}} for sid in fw["applied_to"]]}


def network_json(cloud: Cloud, n: dict) -> dict:
    return {**n, "servers": [s["id"] for s, _ in cloud.networks.attached(n["id"])], "load_balancers": []}


def placement_group_json(cloud: Cloud, g: dict) -> dict:
    return {**g, "servers": [s["id"] for s in list(cloud.store["servers"].values()) if s["placement_group"] == g["id"]]}
