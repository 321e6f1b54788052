"""What a snapshot is built from, as one digest (its ``inputs-hash`` label), so that ``build-snapshot`` can
hand out the snapshot an earlier build made of the same inputs instead of baking the same image again.

Each input is in the digest because changing it changes the image, or what vouches for it:

- the profile's playbooks as rendered (steps, expectations, environment): this takes in the OS and
  package-source data they are rendered over, and an operator's own copy (IMAGEKIT_PLAYBOOKS_DIR). What
  differs in every build (build id, time, git revision) is rendered as fixed placeholders, or no two
  builds would ever match;
- the package source itself (local or vendor): where every package comes from;
- the base image's id, not its name: an updated debian-12 is a new image under the same name (and the id
  is the architecture's own);
- the architecture, besides: ``--arch x86,arm`` reuses and builds each architecture's snapshot on its own;
- the clean script: it decides what stays on the disk;
- the checks: a snapshot vouched for by older checks must pass the new ones before it is handed out;
- imagekit's version: the code that turns all of the above into an image;
- what is baked in besides (bake): the agent code's tree digest, each container image's reference and the content
  of its archive (a reference pulled from a registry counts by name: its tag may move on, as packages do).

Time is not an input: packages move on upstream while every input stays the same. Hence ``--max-age``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from hcloud import Client
from hcloud.images import BoundImage

from .cloud.api import known, selector
from .data import path as data_path
from .host import playbook

LABEL = "inputs-hash"
PER_BUILD = ("build_id", "built_at", "source_revision")  # playbook variables no two builds share
HASH_CHARS = 40  # of the sha256 hex digest: a label value holds at most 63 characters


def inputs_hash(profile: str, variables: dict[str, Any], base_image_id: int, architecture: str,
                baked: dict[str, Any] | None = None) -> str:
    """The digest of a build's inputs; ``variables`` as the build renders its playbooks with."""
    fixed = {**variables, **{name: f"<{name}>" for name in PER_BUILD}}
    checks = data_path("checks")
    inputs = {
        "playbook": dataclasses.asdict(playbook.load(profile, fixed)),
        "package_source": variables["package_source"],
        "base_image_id": base_image_id,
        "architecture": architecture,
        "clean_script": _sha256(data_path("clean_image.sh").read_bytes()),
        "checks": {str(f.relative_to(checks)): _sha256(f.read_bytes()) for f in sorted(checks.rglob("*"))
                   if f.is_file() and "__pycache__" not in f.parts},  # pytest leaves bytecode beside them
        "imagekit": _version(),
        **({"baked": baked} if baked and any(baked.values()) else {}),  # nothing baked: the hash of before
    }
    return _sha256(json.dumps(inputs, sort_keys=True).encode())[:HASH_CHARS]


def reusable_snapshot(client: Client, profile: str, digest: str,
                      max_age_days: float) -> tuple[BoundImage, float] | None:
    """The newest available snapshot of ``profile`` built from inputs of this digest less than ``max_age_days``
    ago, with its age in days; None if there is none."""
    # One listing; no status= filter: hcloud-python's get_all sends per_page in its place (status=50).
    snaps = client.images.get_all(type=["snapshot"], sort=["created:desc"],
                                  label_selector=selector(profile=profile, **{LABEL: digest}))
    now = datetime.now(timezone.utc)
    for image in snaps:
        age = (now - known(image.created, "the snapshot's creation time")).total_seconds() / 86400
        if image.status == "available" and age < max_age_days:
            return image, age
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version() -> str:
    try:
        return metadata.version("imagekit")
    except metadata.PackageNotFoundError:
        return "unknown"
