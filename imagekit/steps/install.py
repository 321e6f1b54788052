"""A profile's playbooks as build, provision and run use them: the variables they are rendered with (one
definition, so a build's inputs-hash and a fallback host's install agree), and a full install over SSH on a host
booted from a stock image (what a fallback host gets instead of a snapshot)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import settings
from ..host import playbook, ssh
from ..host.hostkey import Pin
from ..host.keys import KeyPair


def source_revision() -> str:
    """The git revision imagekit runs from, or ``unknown`` (an installed package has none)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"
    try:
        proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return proc.stdout.strip() or "unknown"


def playbook_variables(profile: str, base_image: str, package_source: str | None, local: bool, build_id: str,
                       grown: bool = False, ipv4: bool = True) -> dict[str, Any]:
    """What a profile's playbook is rendered with; the package source follows the cloud unless set. ``grown``: the
    builder boots a cleaned snapshot (``--from``), whose package lists must be fetched again to see its upgrades.
    ``ipv4`` off: the host is IPv6-only, and reaches the local cloud's repository on its IPv6 address.

    The Node.js major (IMAGEKIT_NODE_MAJOR) is checked here, before anything is created. On the local cloud,
    whose `local` source installs ``nodejs`` from the local cloud's own repository, that major is made ready
    there now (packaged from the official binaries on first use), before any playbook runs apt."""
    from localcloud import client as localcloud

    source, node_major = package_source or ("local" if local else "vendor"), settings.node_major()
    if local and source == "local":
        localcloud.node_package(node_major)
    return {
        "os": base_image, "package_source": source,
        "build_id": build_id, "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_revision": source_revision(), "base_image": base_image, "profile": profile,
        "standin_apt_source": localcloud.guest_apt_source(ipv4 or not local), "node_major": node_major, "grown": grown,
    }


def install_profile(ip: str, keypair: KeyPair, pin: Pin | None, profile: str, base_image: str, local: bool,
                    build_id: str, progress: Callable[[str], None], ipv4: bool = True) -> None:
    """The profile's playbooks over SSH on a host booted from a stock image: what a fallback host gets
    instead of a snapshot (only lines of changed or failed steps reach ``progress``)."""
    book = playbook.load(profile, playbook_variables(profile, base_image, None, local, build_id, ipv4=ipv4))

    def report(line: str) -> None:
        if "[changed]" in line or "[failed]" in line:
            progress(line.strip())

    with ssh.fabric_connection(ip, keypair, pin=pin) as conn:
        playbook.run(book, playbook.fabric_runner(conn), progress=report)
