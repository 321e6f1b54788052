"""What a guest is told before it has a network: its PID 1's command line, the container's kernel command line.

systemd-nspawn passes the arguments after its options to the guest's init, and cloud-init reads a container's
kernel command line from ``/proc/1/cmdline``. So, without writing into the guest's disk, each boot says:

- ``ds=nocloud-net;s=http://169.254.169.254/localcloud/nocloud/``: cloud-init's NoCloud datasource takes the
  server's meta-data, user data and vendor data from the metadata service once the network is up (the Hetzner
  datasource, which Hetzner's images use, detects Hetzner by DMI, which a container does not have, so it does not
  run here; Debian 12's cloud-init 22.4 takes no network configuration from a NoCloud URL either);
- ``network-config=<base64>``: the server's network configuration, the very ``network-config`` the metadata
  service answers (IPv4 by DHCP, the /64's ``::1`` with fe80::1 as its gateway), which cloud-init applies before
  the network comes up, on every boot. One router advertisement or DHCPv6 server on a shared bridge cannot give
  each server its own /64; Hetzner hands its servers their IPv6 the same way, from the metadata's
  ``network-config``.

- ``cc:{...} end_cc``: cloud-init's own configuration: its network stage, which writes the same configuration
  again, does not restart systemd-networkd under a booting guest (its lease and addresses would go and come back
  while the host already connects), and NoCloud looks for no ``cidata`` disk (``blkid`` in both stages, for
  nothing: the seed comes over the network).

The interface is matched as ``host0*``: cloud-init then writes ``10-cloud-init-host0*.network``, which networkd
takes before a ``10-cloud-init-host0.network`` (and its drop-ins: a fixed address, another server's MAC) that a
snapshot of an older local cloud may carry, so that such snapshots still boot. An arm guest's image configures its
network with ifupdown (``host/archimage``: systemd-networkd does not run under qemu-user), which takes a name, not
a pattern: its interface is ``host0``.
"""

from __future__ import annotations

import base64

import yaml

from ..paths import METADATA_ADDRESS
from . import document

INTERFACE = "host0*"
IFUPDOWN_INTERFACE = "host0"
SEED_URL = f"http://{METADATA_ADDRESS}/localcloud/nocloud/"
CLOUD_CONFIG = "cc:{disable_network_activation: true, datasource: {NoCloud: {fs_label: null}}} end_cc"


def boot_args(server: dict, interface: str = INTERFACE) -> list[str]:
    config = yaml.safe_dump(document.network_config(server, interface), sort_keys=False)
    return [f"ds=nocloud-net;s={SEED_URL}", f"network-config={base64.b64encode(config.encode()).decode()}",
            CLOUD_CONFIG]
