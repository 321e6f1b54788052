"""The arm64 system image (``debian-12`` of architecture ``arm``) and what its guests need under qemu-user.

Arm guests are the same systemd-nspawn machines as x86 ones (their own user namespace, cgroups, bridge port,
btrfs disks and snapshots); their programs are arm64 and run through qemu-user (``binfmt``). qemu-user
translates most system calls one to one, but refuses a few that a kernel would take (measured with Debian 12's
qemu 7.2 and bookworm-backports' qemu 10.0, alike):

- ``clone`` with namespace flags (``CLONE_NEWNS``, ``CLONE_PARENT``, ``CLONE_NEWUSER``): EINVAL. systemd forks its
  credential set-up with ``CLONE_NEWNS``, so every unit with ``LoadCredential=`` fails ("Failed to set up
  credentials: Invalid argument": systemd-sysctl, -sysusers, -tmpfiles-setup, ...). The image resets those
  lists (``CREDENTIAL_UNITS``); Hetzner passes a server no credentials anyway. runc forks with
  ``CLONE_PARENT``: Docker cannot start a container. ``PrivateUsers=`` units fail too (``unshare`` of a user
  namespace in a multi-threaded process, which qemu's process always is).
- netlink other than route and audit (``NETLINK_GENERIC``, ``NETLINK_NETFILTER``): EPROTONOSUPPORT.
  systemd-networkd needs generic netlink and does not start, so the image configures its network with
  ifupdown, which cloud-init renders the network-config of the server's boot arguments for (its ``eni``
  renderer: IPv4 by DHCP with ``dhclient``, the /64's ``::1`` static); nftables and iptables (UFW, fail2ban's
  bans, Docker's rules) need netfilter's and fail.

Everything runs emulated, several times slower than natively, so the image holds only what an arm guest needs to
boot, take its network, run cloud-init and sshd (``ARM_PACKAGES``), and is built when it is first needed
(``engine/architectures``). debootstrap runs with Debian's ``py3compile`` diverted to a no-op: each Python
package's postinst would start emulated Pythons to byte-compile it; the host's Python 3.11 compiles the same files
afterwards (byte code does not depend on the architecture). Debian 12's updates (bookworm-updates and -security, as
on an up-to-date Hetzner image) are installed into the image then, once, so that a build's upgrade has little left to
do emulated (the CA certificates' postinst alone takes minutes). The image marks itself (``EMULATED``, with its
``REVISION``: an image of another revision is built again) so that checks name what they skip there and why.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..paths import Layout
from .baseimage import MIRROR, SOURCES, SUITE, ensure_base_image, image_path, partial_path
from .hostcmd import run
from .storage import Storage

log = logging.getLogger("localcloud")

DEBIAN_ARCH = {"x86": "amd64", "arm": "arm64"}
# What cloud-init and sshd need, and ifupdown with a DHCP client for cloud-init's eni renderer (python3-cffi-backend:
# debootstrap cannot resolve python3-cryptography's dependency without it).
ARM_PACKAGES = ("systemd,systemd-sysv,dbus,openssh-server,cloud-init,python3-cffi-backend,iproute2,netbase,"
                "ca-certificates,procps,ifupdown,isc-dhcp-client")
CREDENTIAL_UNITS = ("systemd-sysctl", "systemd-sysusers", "systemd-tmpfiles-setup", "systemd-tmpfiles-setup-dev",
                    "systemd-tmpfiles-clean", "systemd-firstboot")
NO_CREDENTIALS = """\
# imagekit's local cloud: under qemu-user systemd cannot set up a unit's credentials (it clones a mount
# namespace, which qemu-user refuses); the server gets none, as on Hetzner.
[Service]
LoadCredential=
"""
PY3COMPILE, DIVERTED = "usr/bin/py3compile", "usr/bin/py3compile.localcloud"
DIVERSION = f"/{PY3COMPILE}\n/{DIVERTED}\n:\n"  # dpkg's record of a local diversion
DIST_PACKAGES = "usr/lib/python3/dist-packages"
NO_SERVICES = ("usr/sbin/policy-rc.d", "#!/bin/sh\n# imagekit's local cloud: no service starts in a chroot\nexit 101\n")
EMULATED = "etc/imagekit-localcloud/emulated"
# The build's emulated minutes yield the CPU to whatever else runs (a test suite on a 2-core runner): it is built
# in the background at start-up, long before an arm server needs it.
BACKGROUND = ("nice", "-n", "19")
REVISION = 2  # raise it when the image changes: an image of another revision is built again (2: Debian's updates)
EMULATED_TEXT = f"""\
An arm64 guest of imagekit's local cloud (image revision {REVISION}): its programs run through qemu-user on an
x86-64 host.
Not available here: Docker containers (runc's clone flags), netfilter (nftables, iptables, UFW),
systemd-networkd (generic netlink), PrivateUsers= units. See docs/local-cloud.md.
"""


def image_directory(name: str, architecture: str) -> str:
    """The system image's directory under the pool's base images: ``debian-12``, ``debian-12-arm64``."""
    return name if architecture == "x86" else f"{name}-{DEBIAN_ARCH[architecture]}"


def built(layout: Layout, name: str = "debian-12") -> bool:
    """Whether the image of this revision is built (one of another revision is built again at its first use)."""
    marker = image_path(layout, image_directory(name, "arm")) / EMULATED
    return marker.exists() and marker.read_text() == EMULATED_TEXT


def ensure_arm_image(layout: Layout, storage: Storage, name: str = "debian-12") -> Path:
    """Build (once, with debootstrap through qemu-user: minutes) and return the image."""
    if not built(layout, name):  # servers made from an older revision keep their disks (snapshots of their own)
        storage.delete(image_path(layout, image_directory(name, "arm")))
    return ensure_base_image(layout, storage, image_directory(name, "arm"), bootstrap=bootstrap,
                             adapt=adapt_for_emulation)


def bootstrap(root: Path, env: dict) -> None:
    """debootstrap (its script on the host, dpkg and the maintainer scripts in the root through qemu-user) into a
    root seeded with a diversion of ``py3compile`` to a no-op; then the host byte-compiles what it skipped."""
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/diversions").write_text(DIVERSION)  # debootstrap starts dpkg's status, keeps this
    (root / PY3COMPILE).parent.mkdir(parents=True)
    (root / PY3COMPILE).write_text("#!/bin/sh\n# imagekit's local cloud: the host byte-compiles (archimage)\nexit 0\n")
    (root / PY3COMPILE).chmod(0o755)
    run([*BACKGROUND, "debootstrap", f"--arch={DEBIAN_ARCH['arm']}", "--variant=minbase", f"--include={ARM_PACKAGES}",
         SUITE, str(root), MIRROR], timeout=3600, env=env, start_new_session=True)  # its session: see stop_build
    upgrade(root, env)
    (root / DIVERTED).replace(root / PY3COMPILE)
    recorded = root / "var/lib/dpkg/diversions"
    recorded.write_text(recorded.read_text().replace(DIVERSION, "", 1))
    if sys.version_info[:2] == (3, 11):  # Debian 12's: the byte code's version
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", "-s", str(root), "-p", "/",
                        str(root / DIST_PACKAGES)], check=False, capture_output=True, timeout=600)


def upgrade(root: Path, env: dict) -> None:
    """Debian 12's updates, through the mirror, with ``policy-rc.d`` keeping services from starting on the host
    (no systemd runs in the chroot, so maintainer scripts would fall back to init scripts)."""
    (root / "etc/apt/sources.list").write_text(SOURCES)
    path, script = NO_SERVICES
    (root / path).write_text(script)
    (root / path).chmod(0o755)
    apt_env = dict(env, DEBIAN_FRONTEND="noninteractive")
    try:
        for args in (["update"], ["-y", "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"]):
            run([*BACKGROUND, "chroot", str(root), "apt-get", *args], timeout=3600, env=apt_env,
                start_new_session=True)
    finally:
        (root / path).unlink()


def stop_build(layout: Layout, name: str = "debian-12") -> None:
    """End a build still running when the local cloud stops: debootstrap (its own session) and whatever runs in the
    image's chroot (the upgrade's apt-get and what it started); the next one builds again from scratch."""
    target = str(partial_path(layout, image_directory(name, "arm")))
    for entry in os.listdir("/proc"):
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            bootstrapping = target.encode() in args and any(a.endswith(b"debootstrap") for a in args[:2])
            if entry.isdigit() and (bootstrapping or os.readlink(f"/proc/{entry}/root") == target):
                os.killpg(os.getpgid(int(entry)), signal.SIGKILL)
                log.info("stopped the arm64 system image's build (%s)", args[0].decode(errors="replace"))
        except (OSError, ValueError):
            continue


def adapt_for_emulation(root: Path) -> None:
    for unit in CREDENTIAL_UNITS:
        dropin = root / f"etc/systemd/system/{unit}.service.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "localcloud-emulated.conf").write_text(NO_CREDENTIALS)
    for unit in ("systemd-networkd.service", "systemd-networkd.socket"):
        run(["chroot", str(root), "systemctl", "mask", unit])
    marker = root / EMULATED
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(EMULATED_TEXT)
