"""Servers on private networks: who is attached where with which address (the records), and bringing the host in
line with that (``guests/netlinks`` over ``host/privatenet``).

A server's ``private_net`` list holds its attachments in the shape Hetzner's API shows them (``network``, ``ip``,
``alias_ips``, ``mac_address``), in the order they were made: the n-th is the guest's interface
``enp<7+n>s0`` at boot (Hetzner's metadata calls it ``interface_num`` n+1). Addresses come from the network's
cloud subnets in the server's network zone, the first free one (the network's first address is its gateway);
MACs are Hetzner-shaped (``86:00:00:…``), one per attachment. Without host plumbing (tests of the API in
process) networks are records only.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterable

from ..errors import APIError, invalid_input
from ..guests.machines import Machine
from ..guests.netlinks import Port, PrivateLinks
from ..host.hostcmd import HostCommandError
from ..host.privatenet import NetworkSpec
from . import catalog
from .records import Records

log = logging.getLogger("localcloud")

CLOUD_SUBNETS = ("cloud", "server")  # "server" is Hetzner's deprecated name of "cloud"
PLUG_TIMEOUT = 10


def gateway(network: dict) -> str:
    """The network's gateway: the first address of its range, as on Hetzner (every cloud subnet's ``gateway``)."""
    return str(next(ipaddress.ip_network(network["ip_range"]).hosts()))


class PrivateNetworks:
    def __init__(self, records: Records, links: PrivateLinks | None = None):
        self.records = records
        self.links = links
        self._lock = threading.RLock()

    # -- the records -------------------------------------------------------------------------
    def attached(self, net_id: int) -> list[tuple[dict, dict]]:
        """(server, its attachment) of every server on the network."""
        return [(s, e) for s in list(self.records.store["servers"].values())
                for e in s["private_net"] if e["network"] == net_id]

    def metadata(self, server: dict) -> list[dict]:
        """The server's attachments as Hetzner's metadata service lists them (``private-networks``): the n-th
        attachment is ``interface_num`` n (the guest's ``enp<6+n>s0``)."""
        out = []
        for slot, e in enumerate(server["private_net"], 1):
            network = self.records.store["networks"].get(e["network"])
            if network is None:
                continue
            address = ipaddress.ip_address(e["ip"])
            subnet = next((s["ip_range"] for s in network["subnets"]
                           if address in ipaddress.ip_network(s["ip_range"])), network["ip_range"])
            out.append({"ip": e["ip"], "alias_ips": list(e["alias_ips"]), "interface_num": slot,
                        "mac_address": e["mac_address"], "network_id": network["id"], "network_name": network["name"],
                        "network": network["ip_range"], "subnet": subnet, "gateway": gateway(network)})
        return out

    def taken(self, network: dict) -> set[str]:
        return {gateway(network)} | {ip for _, e in self.attached(network["id"]) for ip in (e["ip"], *e["alias_ips"])}

    def attach(self, server: dict, network: dict, *, ip: object = None, alias_ips: object = None,
               ip_range: object = None) -> dict:
        """Add the attachment to the server's record (not saved) after Hetzner's checks; the host follows with
        ``plug`` (a running guest) or at its next boot. Call with the store's lock held."""
        if any(e["network"] == network["id"] for e in server["private_net"]):
            raise APIError("server_already_attached", "server is already attached to this network")
        net_range = ipaddress.ip_network(network["ip_range"])
        for entry in server["private_net"]:
            other = self.records.store["networks"].get(entry["network"])
            if other and ipaddress.ip_network(other["ip_range"]).overlaps(net_range):
                raise APIError("networks_overlap", f"the network's IP range overlaps with the range of network "
                               f"{other['id']} the server is attached to")
        subnets = self._subnets(network, server, ip_range)
        taken = self.taken(network)
        aliases = _addresses(alias_ips, "alias_ips")
        if ip is None:
            busy = taken | set(aliases)
            address = next((str(a) for sn in subnets for a in sn.hosts() if str(a) not in busy), None)
            if address is None:
                raise APIError("no_subnet_available", "no address is free in the network's subnets for this server")
        else:
            (address,) = _addresses([ip], "ip")
        for field, value in [("ip", address)] + [("alias_ips", a) for a in aliases]:
            if not any(ipaddress.ip_address(value) in sn for sn in subnets):
                raise invalid_input(field, f"{value} is not in a cloud subnet of network {network['id']}"
                                    + (f" within {ip_range}" if ip_range else ""))
            if value in taken or any(ipaddress.ip_address(value) in (sn.network_address, sn.broadcast_address)
                                     for sn in subnets):
                raise APIError("ip_not_available", f"IP {value} is not available in network {network['id']}")
        if address in aliases or len(set(aliases)) != len(aliases):
            raise APIError("ip_not_available", "the server's addresses on the network must differ")
        mac = self.records.store.new_id("private_macs")
        entry = {"network": network["id"], "ip": address, "alias_ips": aliases,
                 "mac_address": "86:00:00:" + ":".join(f"{mac >> s & 0xFF:02x}" for s in (16, 8, 0))}
        server["private_net"].append(entry)
        return entry

    def _subnets(self, network: dict, server: dict, ip_range: object) -> list:
        zone = catalog.LOCATION_BY_NAME[server["location"]]["network_zone"]
        subnets = [ipaddress.ip_network(s["ip_range"]) for s in network["subnets"]
                   if s["type"] in CLOUD_SUBNETS and s["network_zone"] == zone]
        if ip_range is not None:
            try:
                wanted = ipaddress.ip_network(ip_range if isinstance(ip_range, str) else "")
            except ValueError:
                raise invalid_input("ip_range", "ip_range must be a subnet's range in CIDR notation") from None
            subnets = [sn for sn in subnets if sn == wanted]
        if not subnets:
            raise APIError("no_subnet_available", f"network {network['id']} has no cloud subnet in network zone "
                           f"{zone}" + (f" with range {ip_range}" if ip_range is not None else ""))
        return subnets

    def detach(self, server: dict, net_id: int) -> dict:
        """Remove the attachment from the server's record (not saved); store's lock held."""
        entry = next((e for e in server["private_net"] if e["network"] == net_id), None)
        if entry is None:
            raise APIError("server_not_attached_to_network", "server is not attached to this network")
        server["private_net"].remove(entry)
        return entry

    # -- the host ----------------------------------------------------------------------------
    def apply(self, net_ids: Iterable[int]) -> None:
        """Bring each network's namespace (gateway, routes, DHCP, port pins) in line with the records."""
        if self.links is None:
            return
        with self._lock:
            for net_id in set(net_ids):
                network = self.records.store["networks"].get(net_id)
                if network is None:
                    self.links.remove(net_id)
                    continue
                attached = self.attached(net_id)
                spec = NetworkSpec(net_id, network["ip_range"], [(r["destination"], r["gateway"])
                                                                 for r in network["routes"]],
                                   [(e["mac_address"], e["ip"]) for _, e in attached])
                self.links.apply(spec, [_port(s, e) for s, e in attached])

    def plug(self, server: dict, machine: Machine, *, only: int | None = None) -> None:
        """Every attachment an interface of the guest, after its machine (re)started; with ``only`` (a live
        attach) that network's alone, failing loudly (at boot a failure is logged and the guest boots on)."""
        if self.links is None or not server["private_net"]:
            return
        deadline = time.monotonic() + PLUG_TIMEOUT
        while (pid := machine.init_pid()) is None:
            if not machine.running or time.monotonic() > deadline:
                log.error("server %s: its guest did not start; its private networks stay unplugged", server["id"])
                return
            time.sleep(0.02)
        with self._lock:
            entries = [(slot, e) for slot, e in enumerate(server["private_net"]) if only in (None, e["network"])]
            self.apply(e["network"] for _, e in entries)
            for slot, entry in entries:
                try:
                    self.links.plug(entry["network"], _port(server, entry), pid, slot)
                except HostCommandError as exc:
                    if only is not None:
                        raise
                    log.error("server %s: %s", server["id"], exc)

    def unplug(self, server: dict, net_id: int) -> None:
        if self.links is not None:
            with self._lock:
                self.links.unplug(net_id, server["id"])
                self.apply([net_id])

    def resume(self) -> None:
        """At start: what an earlier run left goes, every network's namespace is made again."""
        if self.links is not None:
            self.links.sweep()
            self.apply(self.records.store["networks"])

    def close(self) -> None:
        """cloud-down: every network's namespace goes with its DHCP server (made again at the next start)."""
        if self.links is not None:
            self.links.sweep()


def _port(server: dict, entry: dict) -> Port:
    return Port(server["id"], entry["mac_address"], [entry["ip"], *entry["alias_ips"]])


def _addresses(values: object, field: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise invalid_input(field, f"{field} must be a list of IPv4 addresses")
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.IPv4Address(value if isinstance(value, str) else "")))
        except ValueError:
            raise invalid_input(field, f"{value!r} is not an IPv4 address") from None
    return out
