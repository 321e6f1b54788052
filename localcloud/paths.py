"""Where the local cloud keeps its state, and the fixed facts of its network.

Everything lives under one directory (``IMAGEKIT_LOCALCLOUD_DIR``, default
``/var/lib/imagekit/localcloud``) so that ``cloud-down``/``cloud-up`` keep state
and one ``rm -r`` forgets it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def pid_file(self) -> Path:
        return self.root / "api.pid"

    @property
    def lock_file(self) -> Path:
        """Held by the API process for its life (``apilock``)."""
        return self.root / "api.lock"

    @property
    def endpoint_file(self) -> Path:
        return self.root / "endpoint"

    @property
    def api_log(self) -> Path:
        return self.root / "api.log"

    @property
    def request_log(self) -> Path:
        return self.root / "requests.jsonl"

    @property
    def faults_file(self) -> Path:
        return self.root / "faults.json"

    @property
    def pool_image(self) -> Path:
        return self.root / "pool.btrfs"

    @property
    def pool(self) -> Path:
        """Mount point of the btrfs pool (or a plain directory when btrfs is unavailable)."""
        return self.root / "pool"

    @property
    def base_images(self) -> Path:
        return self.pool / "base"

    @property
    def disks(self) -> Path:
        return self.pool / "disks"

    @property
    def snapshots(self) -> Path:
        return self.pool / "snapshots"

    @property
    def machine_logs(self) -> Path:
        return self.root / "machines"

    @property
    def private_networks(self) -> Path:
        """Each private network's DHCP configuration, leases and log (``host/privatenet``)."""
        return self.root / "networks"

    @property
    def apt_repo(self) -> Path:
        return self.root / "apt-repo"

    @property
    def node_tarballs(self) -> Path:
        """Node.js releases as downloaded from the npm registry, packaged into ``apt_repo``."""
        return self.root / "node"


def layout() -> Layout:
    return Layout(Path(os.environ.get("IMAGEKIT_LOCALCLOUD_DIR", "/var/lib/imagekit/localcloud")))


BRIDGE = os.environ.get("IMAGEKIT_LOCALCLOUD_BRIDGE", "ikbr0")
# A /24 the local cloud owns: .1 is the host (API, package mirror), guests get .10 and up.
SUBNET_PREFIX = os.environ.get("IMAGEKIT_LOCALCLOUD_SUBNET", "10.213.7")
HOST_ADDRESS = f"{SUBNET_PREFIX}.1"
MIRROR_PORT = 3142
# A second local cloud on the same host (its own IMAGEKIT_LOCALCLOUD_DIR, _BRIDGE, _SUBNET and _PORT) names its
# machines and its nftables tables after its bridge, so that neither one's start sweeps the other's guests.
MACHINE_PREFIX = "ik-" if BRIDGE == "ikbr0" else f"{BRIDGE}-"
FIREWALL_TABLE = "localcloud_firewalls" if BRIDGE == "ikbr0" else f"localcloud_firewalls_{BRIDGE}"
PORTS_TABLE = "localcloud_ports" if BRIDGE == "ikbr0" else f"localcloud_ports_{BRIDGE}"  # bridgefilter's
DEFAULT_API_PORT = int(os.environ.get("IMAGEKIT_LOCALCLOUD_PORT", "8931"))

# IPv6 as on Hetzner: every server gets a /64 of this local cloud's ULA /48, derived from its bridge's name (unique
# on a host), so two local clouds never hand out the same prefix. The host holds ::1 of subnet 0 on the bridge
# (the API and the mirror for guests over IPv6) and fe80::1, the gateway Hetzner's servers route through.
_GLOBAL_ID = hashlib.sha256(f"imagekit-localcloud:{BRIDGE}".encode()).hexdigest()[:10]
ULA_PREFIX = f"fd{_GLOBAL_ID[:2]}:{_GLOBAL_ID[2:6]}:{_GLOBAL_ID[6:10]}"  # the /48, without its trailing "::"
HOST_ADDRESS6 = f"{ULA_PREFIX}::1"
GATEWAY6 = "fe80::1"
METADATA_ADDRESS = "169.254.169.254"
# Servers without an IPv4 address of their own reach the metadata service from a link-local address of this /24
# (the bridge holds .1), named after the subnet's last octet so that local clouds on one host keep apart.
_LL_OCTET = int(SUBNET_PREFIX.rsplit(".", 1)[1])
LINK_LOCAL_PREFIX = f"169.254.{_LL_OCTET if _LL_OCTET not in (0, 169, 255) else 100 + _LL_OCTET % 100}"
GUEST_TABLE = "localcloud_guests" if BRIDGE == "ikbr0" else f"localcloud_guests_{BRIDGE}"  # metadata redirects
