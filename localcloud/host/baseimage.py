"""Build the local cloud's system image ``debian-12`` once, with debootstrap, and cache it.

The image plays the part of Hetzner's stock image: cloud-init reads NoCloud seeds, SSH keys
go to root (as on Hetzner), apt goes through the provider's mirror (apt-cacher-ng on the
bridge), and it carries no host keys and an empty machine-id so every server is unique.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..paths import HOST_ADDRESS, HOST_ADDRESS6, MIRROR_PORT, Layout
from .hostcmd import run
from .hostnet import ensure_mirror, mirror_url
from .storage import Storage

log = logging.getLogger("localcloud")

SUITE = "bookworm"  # debian-12
PACKAGES = (
    "systemd,systemd-sysv,dbus,openssh-server,cloud-init,python3-cffi-backend,iproute2,sudo,"
    "python3,ca-certificates,procps,curl,netbase,gnupg,less,apt-transport-https"
)
MIRROR = "http://deb.debian.org/debian"

CLOUD_CFG = """\
# Written by imagekit's local cloud: the provider's defaults, as Hetzner's images set them.
datasource_list: [NoCloud, None]
locale: C.UTF-8
manage_etc_hosts: true
disable_root: false
users: []
ssh_pwauth: false
ssh_deletekeys: true
ssh_genkeytypes: [ed25519, ecdsa, rsa]
"""

SOURCES = """\
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""

# Hetzner's images name its resolvers (185.12.64.1/2, 2a01:4ff:ff00::add:1/2); here the local cloud's, on the bridge
# (``dhcp``). debootstrap would leave the host's own resolv.conf in the image: an address guests must not use.
RESOLV_CONF = ("# The provider's resolvers (imagekit's local cloud: dnsmasq on the bridge; no internet here, so it\n"
               f"# resolves no name).\nnameserver {HOST_ADDRESS}\nnameserver {HOST_ADDRESS6}\n")

NO_RA = "[Network]\nIPv6AcceptRA=no\nLinkLocalAddressing=no\n"

# Private network interfaces (``guests/netlinks``) take their address by DHCP whenever they appear, at boot or
# attached live, as Hetzner's images configure theirs: a /32 and the routes the network's DHCP gives.
PRIVATE_NETWORKS = ("etc/systemd/network/60-localcloud-private.network", """\
[Match]
Name=enp*s0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
UseDNS=no
UseDomains=no
UseHostname=no
""")


def image_path(layout: Layout, name: str) -> Path:
    return layout.base_images / name


def partial_path(layout: Layout, name: str) -> Path:
    """Where the image is built until it is complete."""
    return image_path(layout, name).with_name(name + ".partial")


def ensure_base_image(layout: Layout, storage: Storage, name: str = "debian-12", *,
                      bootstrap: Callable[[Path, dict], None] | None = None,
                      adapt: Callable[[Path], None] | None = None) -> Path:
    """Return the cached image root, building it first if needed (~2 minutes, cold cache). ``bootstrap(root, env)``:
    another architecture's debootstrap (``archimage``), ``adapt`` what it adds last."""
    target = image_path(layout, name)
    if (target / "etc/os-release").exists():
        _private_networks(target)  # an image built before private networks existed
        _resolvers(target)  # or before it had the provider's resolvers
        return target
    ensure_mirror()
    partial = partial_path(layout, name)
    storage.delete(partial)
    storage.new_volume(partial)
    started = time.monotonic()
    log.info("building system image %s with debootstrap (once; cached afterwards)", name)
    env = dict(os.environ, http_proxy=f"http://127.0.0.1:{MIRROR_PORT}")
    try:
        (bootstrap or _debootstrap)(partial, env)
        _configure(partial)
        if adapt:
            adapt(partial)
    except BaseException:
        storage.delete(partial)
        raise
    partial.rename(target)
    log.info("system image %s built in %.0f s", name, time.monotonic() - started)
    return target


def _debootstrap(root: Path, env: dict) -> None:
    run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root), MIRROR], timeout=1800,
        env=env)


def _configure(root: Path) -> None:
    (root / "etc/cloud/cloud.cfg.d/90-localcloud.cfg").write_text(CLOUD_CFG)
    (root / "etc/apt/sources.list").write_text(SOURCES)
    (root / "etc/apt/apt.conf.d/00localcloud-mirror").write_text(
        f'// The local cloud\'s package mirror (apt-cacher-ng on the bridge).\nAcquire::http::Proxy "{mirror_url()}";\n'
        f'Acquire::http::Proxy::{HOST_ADDRESS} "DIRECT";\n'
    )
    # cloud-init 22.4 does not render accept-ra: false; without this networkd waits ~13 s for RAs.
    dropin = root / "etc/systemd/network/10-cloud-init-host0.network.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "no-ra.conf").write_text(NO_RA)
    _private_networks(root)
    _resolvers(root)
    run(["chroot", str(root), "systemctl", "enable", "systemd-networkd"])
    # Units that only make sense on real hardware or a host with a console.
    for unit in ("systemd-networkd-wait-online.service", "console-getty.service", "getty@tty1.service"):
        run(["chroot", str(root), "systemctl", "mask", unit], check=False)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    run(["chroot", str(root), "passwd", "-l", "root"])
    run(["chroot", str(root), "apt-get", "clean"])
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()


def _resolvers(root: Path) -> None:
    path = root / "etc/resolv.conf"
    if path.is_symlink() or not path.is_file() or path.read_text() != RESOLV_CONF:
        path.unlink(missing_ok=True)
        path.write_text(RESOLV_CONF)
        path.chmod(0o644)


def _private_networks(root: Path) -> None:
    path, text = PRIVATE_NETWORKS
    if not (root / path).exists():
        (root / path).write_text(text)
