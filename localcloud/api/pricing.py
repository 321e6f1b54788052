"""``/v1/pricing`` as Hetzner serves it: what every resource costs, so that cost is computed from the API alone.

Server types' prices are those the catalogue's types carry (``engine/catalog``), per location, for the types
``/v1/server_types`` lists (no arm types where this host cannot run them); the rest are
Hetzner's list prices (EUR, net, German VAT): Primary IPv4 0.50 a month (IPv6 free), snapshots 0.0119 per GB and
month, volumes 0.044 per GB and month, backups 20 % of the server's price, Floating IPs and load balancers for the
shapes clients expect.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..engine import catalog
from .catalogue import types

VAT = 0.19
HOURS_PER_MONTH = 730
PRIMARY_IP_MONTHLY = {"ipv4": 0.50, "ipv6": 0.0}
FLOATING_IP_MONTHLY = {"ipv4": 3.00, "ipv6": 1.00}
IMAGE_PER_GB_MONTH = 0.0119
VOLUME_PER_GB_MONTH = 0.044
LOAD_BALANCER_TYPES = [(1, "lb11", 5.39, 20), (2, "lb21", 16.40, 20), (3, "lb31", 32.90, 20)]  # id, name, EUR, TB

router = APIRouter()


def price(net: float) -> dict:
    return {"net": f"{net:.4f}", "gross": f"{net * (1 + VAT):.4f}"}


def _per_time(monthly: float, location: str) -> dict:
    return {"location": location, "price_hourly": price(monthly / HOURS_PER_MONTH), "price_monthly": price(monthly)}


def pricing(server_types: list[dict] = catalog.SERVER_TYPES) -> dict:
    locations: list[str] = [str(loc["name"]) for loc in catalog.LOCATIONS]
    return {
        "currency": "EUR", "vat_rate": f"{VAT * 100:.2f}",
        "image": {"price_per_gb_month": price(IMAGE_PER_GB_MONTH)},
        "volume": {"price_per_gb_month": price(VOLUME_PER_GB_MONTH)},
        "server_backup": {"percentage": "20.00"},
        "server_types": [{"id": t["id"], "name": t["name"], "prices": t["prices"]} for t in server_types],
        "primary_ips": [{"type": kind, "prices": [_per_time(monthly, loc) for loc in locations]}
                        for kind, monthly in PRIMARY_IP_MONTHLY.items()],
        "floating_ip": {"price_monthly": price(FLOATING_IP_MONTHLY["ipv4"])},
        "floating_ips": [{"type": kind, "prices": [{"location": loc, "price_monthly": price(monthly)}
                                                   for loc in locations]}
                         for kind, monthly in FLOATING_IP_MONTHLY.items()],
        "load_balancer_types": [{"id": lid, "name": name, "prices": [
            {**_per_time(monthly, loc), "included_traffic": tb * 1024**4,
             "price_per_tb_traffic": price(1.0)} for loc in locations]}
            for lid, name, monthly, tb in LOAD_BALANCER_TYPES],
    }


@router.get("/v1/pricing")
def get_pricing(request: Request):
    return {"pricing": pricing(types(request))}
