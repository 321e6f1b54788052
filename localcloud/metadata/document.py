"""What the metadata service tells a server about itself, in Hetzner's shapes.

``/hetzner/v1/metadata`` is one YAML document (hostname, instance-id, public-ipv4, public-keys, vendor_data,
network-config, availability-zone, region); ``/hetzner/v1/metadata/<key>`` one of its keys (a scalar as plain text,
a list or mapping as YAML); ``/hetzner/v1/metadata/private-networks`` the server's private networks (from its
record's ``private_net`` entries, which a network attachment fills in); ``/hetzner/v1/userdata`` the user data
unchanged. Under ``/localcloud/nocloud/`` the same server as cloud-init's NoCloud seed (``meta-data``,
``user-data``, ``vendor-data``): the path the local guests take (``guests.bootargs`` says why).
"""

from __future__ import annotations

import shlex

import yaml

from ..paths import GATEWAY6, HOST_ADDRESS, HOST_ADDRESS6, MIRROR_PORT

VENDOR_DATA = ""  # Hetzner's vendor data configures its own images; the local cloud's image needs none
MIRROR6_CONF = "/etc/apt/apt.conf.d/01localcloud-mirror6"  # an IPv6-only server's apt proxy (vendor_data)
PRIVATE_NETWORK_KEYS = ("ip", "alias_ips", "interface_num", "mac_address", "network_id", "network_name", "network",
                        "subnet", "gateway")


Zone = tuple[str, str]  # the server's datacenter (its availability zone) and network zone (its region)


def metadata(server: dict, zone: Zone) -> dict:
    return {
        "hostname": server["name"],
        "instance-id": server["id"],
        "local-ipv4": "",
        "public-ipv4": server.get("address") or "",
        "public-keys": list(server["ssh_keys"]),
        "vendor_data": vendor_data(server),
        "network-config": network_config(server, "eth0"),
        "availability-zone": zone[0],
        "region": zone[1],
    }


def vendor_data(server: dict) -> str:
    """Nothing, but for an IPv6-only server, which cannot reach its image's apt proxy (the mirror's IPv4 address):
    the mirror on the bridge's IPv6 address and the API's own repository there direct, and apt sources that name the
    repository by the host's IPv4 address (a snapshot built with IPv4) moved to its IPv6 one, as the mirrors and
    vendors' repositories this stands in for answer on IPv6 too. On every boot (``bootcmd``, which imagekit's user
    data does not set: not overridden), before any apt run; apt's per-host key takes an IPv6 address as it is."""
    if server.get("address") or not server.get("ipv6"):
        return VENDOR_DATA
    conf = (f'Acquire::http::Proxy "http://[{HOST_ADDRESS6}]:{MIRROR_PORT}";\n'
            f'Acquire::http::Proxy::{HOST_ADDRESS6} "DIRECT";\n')
    moved = f"s|http://{HOST_ADDRESS.replace('.', '[.]')}:|http://[{HOST_ADDRESS6}]:|g"
    sources = f"for f in /etc/apt/sources.list.d/*.list; do [ -f \"$f\" ] && sed -i '{moved}' \"$f\"; done; true"
    return "#cloud-config\n" + _yaml({"bootcmd": [["sh", "-c", f"printf %s {shlex.quote(conf)} > {MIRROR6_CONF}"],
                                                  ["sh", "-c", sources]]})


def network_config(server: dict, interface: str) -> dict:
    """Hetzner's network-config (version 1): IPv4 by DHCP, the /64's ``::1`` with fe80::1 as the gateway."""
    subnets: list[dict] = [{"ipv4": True, "type": "dhcp", "dns_nameservers": [HOST_ADDRESS]}]
    if server.get("ipv6"):
        subnets.append({"address": server["ipv6"].replace("::/64", "::1/64"), "gateway": GATEWAY6, "ipv6": True,
                        "type": "static"})
    return {"version": 1, "config": [{"type": "physical", "name": interface, "subnets": subnets}]}


def private_networks(server: dict) -> list[dict]:
    return [{key: entry.get(key) for key in PRIVATE_NETWORK_KEYS} for entry in server.get("private_net", [])]


def nocloud_meta_data(server: dict) -> dict:
    """A fresh instance-id per server and rebuild (cloud-init's first-boot work runs once per instance-id)."""
    return {"instance-id": f"i-{server['id']}-{server['instance']}", "local-hostname": server["name"],
            "public-keys": list(server["ssh_keys"])}


def _yaml(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=1 << 20)


def answer(server: dict, zone: Zone, path: str) -> str | None:
    """The body for GET ``path`` (without query), or None when there is no such path."""
    path = path.rstrip("/") if path != "/" else path
    if path == "/hetzner/v1/userdata":
        return server.get("user_data") or ""
    if path == "/hetzner/v1/metadata":
        return _yaml(metadata(server, zone))
    if path == "/hetzner/v1/metadata/private-networks":
        return _yaml(private_networks(server))
    if path.startswith("/hetzner/v1/metadata/"):
        value = metadata(server, zone).get(path.removeprefix("/hetzner/v1/metadata/"))
        if value is None:
            return None
        return _yaml(value) if isinstance(value, (list, dict)) else str(value)
    nocloud = {"/localcloud/nocloud/meta-data": lambda: _yaml(nocloud_meta_data(server)),
               "/localcloud/nocloud/user-data": lambda: server.get("user_data") or "",
               "/localcloud/nocloud/vendor-data": lambda: vendor_data(server)}
    return nocloud[path]() if path in nocloud else None
