"""The fixed catalogue: locations, datacenters, server types and system images.

Names, ids and shapes follow Hetzner's public API; what is *available* follows what this
host can really run (``architectures``: x86 always, arm where qemu-user runs arm64 programs; one
system image per architecture, built with debootstrap).
"""

from __future__ import annotations

LOCATIONS = [
    {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1", "country": "DE", "city": "Falkenstein",
     "latitude": 50.47612, "longitude": 12.370071, "network_zone": "eu-central"},
    {"id": 2, "name": "nbg1", "description": "Nuremberg DC Park 1", "country": "DE", "city": "Nuremberg",
     "latitude": 49.452102, "longitude": 11.076665, "network_zone": "eu-central"},
    {"id": 3, "name": "hel1", "description": "Helsinki DC Park 1", "country": "FI", "city": "Helsinki",
     "latitude": 60.169855, "longitude": 24.938379, "network_zone": "eu-central"},
    {"id": 4, "name": "ash", "description": "Ashburn, VA", "country": "US", "city": "Ashburn, VA",
     "latitude": 39.045821, "longitude": -77.487073, "network_zone": "us-east"},
    {"id": 5, "name": "hil", "description": "Hillsboro, OR", "country": "US", "city": "Hillsboro, OR",
     "latitude": 45.54222, "longitude": -122.951924, "network_zone": "us-west"},
    {"id": 6, "name": "sin", "description": "Singapore", "country": "SG", "city": "Singapore",
     "latitude": 1.283333, "longitude": 103.833333, "network_zone": "ap-southeast"},
]
LOCATION_BY_NAME = {loc["name"]: loc for loc in LOCATIONS}

DATACENTERS = [
    {"id": 4, "name": "fsn1-dc14", "description": "Falkenstein 1 virtual DC 14", "location": "fsn1"},
    {"id": 2, "name": "nbg1-dc3", "description": "Nuremberg 1 virtual DC 3", "location": "nbg1"},
    {"id": 3, "name": "hel1-dc2", "description": "Helsinki 1 virtual DC 2", "location": "hel1"},
    {"id": 5, "name": "ash-dc1", "description": "Ashburn virtual DC 1", "location": "ash"},
    {"id": 6, "name": "hil-dc1", "description": "Hillsboro virtual DC 1", "location": "hil"},
    {"id": 7, "name": "sin-dc1", "description": "Singapore virtual DC 1", "location": "sin"},
]
DATACENTER_BY_LOCATION = {dc["location"]: dc for dc in DATACENTERS}

EU = ["fsn1", "nbg1", "hel1"]
ALL = [loc["name"] for loc in LOCATIONS]
CX22_DEPRECATION = {"announced": "2025-10-16T06:00:00+00:00", "unavailable_after": "2026-12-31T23:59:59+00:00"}

# (id, name, cores, memory GB, disk GB, cpu_type, architecture, category, locations, deprecation, EUR/month)
_TYPES = [
    (104, "cx23", 2, 4.0, 40, "shared", "x86", "cost_optimized", EU, None, "3.49"),
    (105, "cx33", 4, 8.0, 80, "shared", "x86", "cost_optimized", EU, None, "5.49"),
    (106, "cx43", 8, 16.0, 160, "shared", "x86", "cost_optimized", EU, None, "9.49"),
    (108, "cpx22", 2, 4.0, 80, "shared", "x86", "regular_purpose", ALL, None, "6.49"),
    (109, "cpx32", 4, 8.0, 160, "shared", "x86", "regular_purpose", ALL, None, "11.49"),
    (96, "ccx13", 2, 8.0, 80, "dedicated", "x86", "general_purpose", ALL, None, "12.49"),
    (45, "cax11", 2, 4.0, 40, "shared", "arm", "cost_optimized", EU, None, "3.79"),
    (93, "cax21", 4, 8.0, 80, "shared", "arm", "cost_optimized", EU, None, "6.49"),
    (94, "cax31", 8, 16.0, 160, "shared", "arm", "cost_optimized", EU, None, "12.49"),
    (95, "cax41", 16, 32.0, 320, "shared", "arm", "cost_optimized", EU, None, "24.49"),
    (22, "cx22", 2, 4.0, 40, "shared", "x86", "cost_optimized", EU, CX22_DEPRECATION, "3.79"),
]


def _server_type(t) -> dict:
    tid, name, cores, memory, disk, cpu, arch, category, locs, deprecation, price = t
    net = f"{float(price):.4f}"
    return {
        "id": tid, "name": name, "description": name.upper(), "category": category, "cores": cores,
        "memory": memory, "disk": disk, "deprecated": deprecation is not None, "deprecation": deprecation,
        "storage_type": "local", "cpu_type": cpu, "architecture": arch,
        "locations": [{"id": LOCATION_BY_NAME[n]["id"], "name": n, "deprecation": deprecation,
                       "available": True, "recommended": n == locs[0]} for n in locs],
        "prices": [{"location": n,
                    "price_hourly": {"net": f"{float(price) / 730:.4f}", "gross": f"{float(price) / 730 * 1.19:.4f}"},
                    "price_monthly": {"net": net, "gross": f"{float(price) * 1.19:.4f}"},
                    "included_traffic": 21990232555520, "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"}}
                   for n in locs],
    }


SERVER_TYPES = [_server_type(t) for t in _TYPES]
SERVER_TYPE_BY_NAME = {t["name"]: t for t in SERVER_TYPES}


def datacenter_json(dc: dict, types: list[dict] = SERVER_TYPES) -> dict:
    ids = [t["id"] for t in types if any(loc["name"] == dc["location"] for loc in t["locations"])]
    return {
        "id": dc["id"], "name": dc["name"], "description": dc["description"],
        "location": LOCATION_BY_NAME[dc["location"]],
        "server_types": {"supported": ids, "available": ids, "available_for_migration": ids},
    }


# The system images this host really has (built by host/baseimage.py, the arm one by host/archimage.py): one name,
# one image per architecture, as Hetzner lists them.
SYSTEM_IMAGES = [
    {"id": iid, "type": "system", "status": "available", "name": "debian-12", "description": "Debian 12",
     "image_size": None, "disk_size": 5, "created": "2023-06-13T06:00:02+00:00", "created_from": None,
     "bound_to": None, "os_flavor": "debian", "os_version": "12", "rapid_deploy": True,
     "protection": {"delete": False}, "deprecated": None, "deleted": None, "labels": {}, "architecture": arch}
    for iid, arch in ((114690387, "x86"), (114690389, "arm"))
]
