"""What things cost, from the API's ``/pricing`` document alone (one request): a server type in a location, a
Primary IP in a location, a GB of snapshot for a month. Gross prices (VAT included: what the bill says), in the
document's currency; the caps (steps/caps.py) and ``invoke cost`` (fleet/cost.py) read them here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hcloud import Client

from ..errors import CloudError

HOURS_PER_MONTH = 730  # Hetzner's month of hours: its hourly prices are the monthly ones over 730 (and a month caps)


@dataclass(frozen=True)
class Rate:
    """A price per hour and per month, gross."""

    hourly: float
    monthly: float

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.hourly + other.hourly, self.monthly + other.monthly)

    def times(self, n: float) -> Rate:
        return Rate(self.hourly * n, self.monthly * n)


FREE = Rate(0.0, 0.0)


@dataclass(frozen=True)
class Pricing:
    document: dict[str, Any]  # /pricing's ``pricing`` object

    @classmethod
    def read(cls, client: Client) -> Pricing:
        return cls(client.request("GET", "/pricing")["pricing"])

    @property
    def currency(self) -> str:
        return str(self.document.get("currency", "EUR"))

    @property
    def vat_rate(self) -> str:
        return str(self.document.get("vat_rate", ""))

    def server(self, server_type: str, location: str | None) -> Rate:
        """A server of ``server_type`` in ``location`` (None: the dearest location, for a create whose location
        the API picks)."""
        entry = next((t for t in self.document.get("server_types", []) if t.get("name") == server_type), None)
        if entry is None:
            raise CloudError(f"the API's /pricing has no price for server type {server_type}")
        return self._per_location(entry.get("prices", []), location, f"server type {server_type}")

    def primary_ip(self, kind: str, location: str | None) -> Rate:
        """A Primary IP of ``kind`` (ipv4, ipv6) in ``location``."""
        entry = next((p for p in self.document.get("primary_ips", []) if p.get("type") == kind), None)
        return FREE if entry is None else self._per_location(entry.get("prices", []), location, f"a Primary {kind}")

    def image_gb_month(self) -> float:
        """A GB of snapshot for a month (Hetzner bills its image_size)."""
        return _gross(self.document.get("image", {}).get("price_per_gb_month"), "snapshots' storage")

    def snapshots(self, gigabytes: float) -> Rate:
        monthly = gigabytes * self.image_gb_month()
        return Rate(monthly / HOURS_PER_MONTH, monthly)

    @staticmethod
    def _per_location(prices: list[dict[str, Any]], location: str | None, what: str) -> Rate:
        rates = [(p.get("location"), Rate(_gross(p.get("price_hourly"), what), _gross(p.get("price_monthly"), what)))
                 for p in prices]
        if location is not None:
            rates = [r for r in rates if r[0] == location]
        if not rates:
            raise CloudError(f"the API's /pricing has no price for {what} in {location or 'any location'}")
        return max((rate for _, rate in rates), key=lambda r: r.hourly)


def _gross(price: Any, what: str) -> float:
    try:
        return float(price["gross"])
    except (TypeError, KeyError, ValueError):
        raise CloudError(f"the API's /pricing has no gross price for {what}") from None
