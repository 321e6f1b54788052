"""``build-snapshot``: the golden agent-host image, as a pipeline of steps with cleanups.

Inputs checked → temporary key → builder server → running → SSH + cloud-init → playbooks →
verify (testinfra) → clean → shut down → snapshot; the builder and the key are the cleanups
of the steps that created them, so they go on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hcloud import APIException, Client
from hcloud.images import BoundImage, Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

from . import cloudapi, playbook, ssh, verify
from .keys import KeyPair, new_ed25519
from localcloud.client import GUEST_APT_SOURCE
from .target import Target

ROOT = Path(__file__).resolve().parent.parent
CLEAN_SCRIPT = Path(__file__).with_name("clean_image.sh")
SHUTDOWN_GRACE = 60
# The local cloud's Tailscale STAND-IN repository (package source `local`).
STANDIN_APT_SOURCE = GUEST_APT_SOURCE


@dataclass
class BuildOptions:
    profile: str = "agent"
    base_image: str = "debian-12"
    server_type: str = "cx23"
    location: str | None = None
    name: str = "imagekit-{profile}-{build_id}"
    keep_on_failure: bool = False
    package_source: str | None = None  # default: local on the local cloud, vendor on Hetzner
    ssh_timeout: float = 300  # seconds the builder may take to accept SSH


@dataclass
class BuildState:
    target: Target
    client: Client
    options: BuildOptions
    progress: object
    build_id: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3))
    base: BoundImage | None = None
    keypair: KeyPair | None = None
    ssh_key: object | None = None
    server: object | None = None
    ip: str | None = None
    conn: object | None = None
    image: BoundImage | None = None
    expect: dict = field(default_factory=dict)
    description: str = ""
    failed: bool = False
    playbook: playbook.Playbook | None = None
    size_before_clean: int | None = None
    size_after_clean: int | None = None
    versions: dict = field(default_factory=dict)
    requests_at_start: int = 0

    @property
    def labels(self) -> dict[str, str]:
        return cloudapi.labels(role="builder", **{"build-id": self.build_id})

    @property
    def resource_name(self) -> str:
        return f"imagekit-build-{self.build_id}"

    def keep(self) -> bool:
        return self.failed and self.options.keep_on_failure


def source_revision() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


class CheckInputs:
    name = "check inputs"

    def run(self, s: BuildState) -> None:
        o, c = s.options, s.client
        stype = c.server_types.get_by_name(o.server_type)
        if stype is None:
            names = ", ".join(t.name for t in c.server_types.get_all())
            raise cloudapi.CloudError(f"server type '{o.server_type}' does not exist; choose one of: {names}")
        if any(loc.deprecation for loc in stype.locations or []):
            s.progress(f"warning: server type {stype.name} is deprecated; pick a current one with --server-type")
        if o.location and c.locations.get_by_name(o.location) is None:
            names = ", ".join(loc.name for loc in c.locations.get_all())
            raise cloudapi.CloudError(f"location '{o.location}' does not exist; choose one of: {names}")
        s.base = c.images.get_by_name_and_architecture(o.base_image, stype.architecture)
        if s.base is None:
            raise cloudapi.CloudError(f"base image '{o.base_image}' ({stype.architecture}) does not exist; "
                                      "list images with `hcloud image list --type system`")
        if s.base.deprecated:
            s.progress(f"warning: base image {o.base_image} is deprecated since {s.base.deprecated}")
        s.description = o.name.format(profile=o.profile, build_id=s.build_id)
        if any(i.description == s.description for i in c.images.get_all(type="snapshot")):
            raise cloudapi.CloudError(f"a snapshot named '{s.description}' exists already; pick another --name")
        s.playbook = playbook.load(o.profile, playbook_variables(o, s.target.local, s.build_id))
        s.expect = s.playbook.expect

    def cleanup(self, s: BuildState) -> None:
        pass


def playbook_variables(o: BuildOptions, local: bool, build_id: str) -> dict:
    """What the profile's playbook is rendered with; the package source follows the cloud unless set."""
    return {
        "os": o.base_image, "package_source": o.package_source or ("local" if local else "vendor"),
        "build_id": build_id, "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_revision": source_revision(), "base_image": o.base_image, "profile": o.profile,
        "standin_apt_source": STANDIN_APT_SOURCE,
    }


class TemporaryKey:
    name = "temporary SSH key"

    def run(self, s: BuildState) -> None:
        s.keypair = new_ed25519(s.resource_name)
        s.ssh_key = s.client.ssh_keys.create(name=s.resource_name, public_key=s.keypair.public_openssh,
                                             labels=s.labels)

    def cleanup(self, s: BuildState) -> None:
        if s.ssh_key is not None and not s.keep():
            s.client.ssh_keys.delete(s.ssh_key)


class BuilderServer:
    name = "builder server"

    def run(self, s: BuildState) -> None:
        o = s.options
        resp = s.client.servers.create(
            name=s.resource_name, server_type=ServerType(name=o.server_type), image=Image(id=s.base.id),
            ssh_keys=[s.ssh_key], labels=s.labels, location=Location(name=o.location) if o.location else None)
        s.server = resp.server  # recorded before any wait, so a failed wait is still cleaned up
        cloudapi.wait(resp.action, 600, "creating the builder server")
        s.server.reload()
        s.ip = s.server.public_net.ipv4.ip

    def cleanup(self, s: BuildState) -> None:
        if s.server is None:
            return
        if s.keep():
            s.progress(f"keeping builder server {s.server.id} for debugging: "
                       f"ssh root@{s.ip} (delete it with `invoke gc` when done)")
            return
        cloudapi.wait(s.client.servers.delete(s.server), 300, "deleting the builder server")


class WaitReady:
    name = "SSH and cloud-init"

    def run(self, s: BuildState) -> None:
        s.conn = ssh.wait_for_ssh(s.ip, s.keypair, deadline=time.monotonic() + s.options.ssh_timeout)
        code, out, err = ssh.run(s.conn, "cloud-init status --wait", timeout=600)
        if code != 0:
            raise RuntimeError(f"cloud-init on the builder ended with an error: {(out + err).strip()[-500:]}")

    def cleanup(self, s: BuildState) -> None:
        if s.conn is not None:
            s.conn.close()


class RunPlaybooks:
    name = "playbooks"

    def run(self, s: BuildState) -> None:
        with ssh.fabric_connection(s.ip, s.keypair) as conn:
            playbook.run(s.playbook, playbook.fabric_runner(conn), progress=s.progress)

    def cleanup(self, s: BuildState) -> None:
        pass


class Verify:
    """The image's testinfra suite; on a clone also the checks that it is a machine of its own."""

    def __init__(self, clone: bool = False):
        self.clone = clone
        self.name = "verify the clone (testinfra)" if clone else "verify (testinfra)"

    def run(self, s: BuildState) -> None:
        verify.run_suite(s.ip, s.keypair, s.expect, clone=self.clone)

    def cleanup(self, s: BuildState) -> None:
        pass


class CleanImage:
    name = "clean image"

    def run(self, s: BuildState) -> None:
        s.size_before_clean = _disk_used(s.conn)
        code, out, _ = ssh.run(s.conn, "cat /opt/openclaw/manifest.json")
        s.versions = json.loads(out).get("versions", {}) if code == 0 else {}
        script = CLEAN_SCRIPT.read_text().replace("@BUILD_KEY@", s.keypair.public_openssh.split()[1])
        code, out, err = ssh.run(s.conn, script, timeout=600)
        if code != 0:
            raise RuntimeError(f"cleaning the image failed: {(out + err).strip()[-800:]}")
        s.size_after_clean = _disk_used(s.conn)
        s.conn.close()
        s.conn = None

    def cleanup(self, s: BuildState) -> None:
        pass


def _disk_used(conn) -> int:
    """Bytes in the root file system (du, not df: on the local cloud df shows the whole pool)."""
    code, out, _ = ssh.run(conn, "du -sxb / 2>/dev/null | cut -f1")
    return int(out.strip()) if code == 0 and out.strip().isdigit() else 0


class ShutDown:
    name = "shut down"

    def run(self, s: BuildState) -> None:
        cloudapi.wait(s.server.shutdown(), 120, "shutting down the builder")
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while time.monotonic() < deadline:  # shutdown finishes before the server is off
            s.server.reload()
            if s.server.status == "off":
                return
            time.sleep(0.5)
        s.progress(f"builder not off after {SHUTDOWN_GRACE} s; powering it off")
        cloudapi.wait(s.server.power_off(), 120, "powering off the builder")

    def cleanup(self, s: BuildState) -> None:
        pass


class Snapshot:
    name = "snapshot"

    def run(self, s: BuildState) -> None:
        labels = cloudapi.labels(profile=s.options.profile, **{
            "build-id": s.build_id, "source-revision": source_revision(), "base-image": s.options.base_image,
            "version": s.build_id.split("-")[0]})
        resp = s.server.create_image(type="snapshot", description=s.description, labels=labels)
        s.image = resp.image
        cloudapi.wait(resp.action, 1800, "creating the snapshot")
        s.image = s.client.images.get_by_id(resp.image.id)

    def cleanup(self, s: BuildState) -> None:
        if s.failed and s.image is not None:
            s.client.images.delete(s.image)


STEPS = [CheckInputs, TemporaryKey, BuilderServer, WaitReady, RunPlaybooks, Verify, CleanImage, ShutDown, Snapshot]


def build_snapshot(target: Target, options: BuildOptions, progress) -> dict:
    client = cloudapi.connect(target)
    state = BuildState(target=target, client=client, options=options, progress=progress)
    state.requests_at_start = cloudapi.api_requests(target) or 0
    progress(f"build {state.build_id}: profile {options.profile}, base {options.base_image}, "
             f"type {options.server_type}, on the {target.describe()}")
    durations = cloudapi.run_steps(client, [cls() for cls in STEPS], state, progress)
    image = state.image
    return {
        "api_requests": cloudapi.api_requests(target) - state.requests_at_start if target.local else None,
        "snapshot_id": image.id, "description": image.description, "labels": image.labels,
        "image_size_gb": image.image_size, "disk_used_before_clean": state.size_before_clean,
        "disk_used_after_clean": state.size_after_clean, "build_id": state.build_id,
        "durations": durations, "seconds": round(sum(durations.values()), 2), "expect": state.expect,
        "versions": state.versions,
    }


def find_snapshot(client: Client, ident: str, profile: str = "agent") -> BoundImage:
    """A snapshot by id, or ``latest``: the newest snapshot of the profile made by imagekit."""
    if ident == "latest":
        images = client.images.get_all(type="snapshot", label_selector=cloudapi.selector(profile=profile),
                                       sort=["created:desc"])
        if not images:
            raise cloudapi.CloudError(f"no snapshot of profile '{profile}' exists; build one with "
                                      "`invoke build-snapshot`")
        return images[0]
    try:
        return client.images.get_by_id(int(ident))
    except (ValueError, APIException):
        raise cloudapi.CloudError(f"snapshot '{ident}' not found; list snapshots with "
                                  "`hcloud image list --type snapshot` or use --snapshot latest") from None


class CloneServer(BuilderServer):
    name = "throw-away server from the snapshot"

    def run(self, s: BuildState) -> None:
        s.base = s.image
        super().run(s)


def verify_snapshot(target: Target, snapshot: str, server_type: str, progress) -> dict:
    """Boot a throw-away server from the snapshot, run the image suite plus clone checks, delete it."""
    client = cloudapi.connect(target)
    image = find_snapshot(client, snapshot)
    labels = image.labels or {}
    options = BuildOptions(profile=labels.get("profile", "agent"), base_image=labels.get("base-image", "debian-12"),
                           server_type=server_type)
    state = BuildState(target=target, client=client, options=options, progress=progress, image=image)
    state.playbook = playbook.load(options.profile, playbook_variables(options, target.local, state.build_id))
    state.expect = state.playbook.expect
    progress(f"verifying snapshot {image.id} ({image.description}) on the {target.describe()}")
    steps = [TemporaryKey(), CloneServer(), WaitReady(), Verify(clone=True)]
    durations = cloudapi.run_steps(client, steps, state, progress)
    return {"snapshot_id": image.id, "ok": True, "durations": durations}
