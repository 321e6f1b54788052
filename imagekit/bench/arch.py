"""``arm_build_over_x86_build``: one ``build-snapshot --arch x86,arm`` of the example Node.js profile
(imagekit/data/example_node_profile: no Docker or netfilter, which the local cloud's qemu-user arm servers cannot
run), the two builders in parallel; the arm build's seconds over the x86 one's, both snapshots deleted after. The
profile is an operator's: it is built from a playbooks folder made for the run (IMAGEKIT_PLAYBOOKS_DIR)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..build import BuildOptions, build_snapshot
from ..data import path as data_path
from .state import Bench

PROFILE = "nodeagent"


def operator_playbooks(folder: Path) -> Path:
    """imagekit's playbooks with the example Node.js profile added, in ``folder``: an operator's own copy."""
    books = folder / "playbooks"
    shutil.copytree(data_path("playbooks"), books)
    shutil.copytree(data_path("example_node_profile"), books, dirs_exist_ok=True)
    return books


@contextlib.contextmanager
def _playbooks_dir(books: Path) -> Iterator[None]:
    before = os.environ.get("IMAGEKIT_PLAYBOOKS_DIR")
    os.environ["IMAGEKIT_PLAYBOOKS_DIR"] = str(books)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("IMAGEKIT_PLAYBOOKS_DIR")
        else:
            os.environ["IMAGEKIT_PLAYBOOKS_DIR"] = before


def arm_over_x86(b: Bench) -> dict[str, Any]:
    b.progress(f"bench: profile {PROFILE} built for x86 and arm at once (--arch x86,arm)")
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-") as tmp, _playbooks_dir(operator_playbooks(Path(tmp))):
        result = build_snapshot(b.target, BuildOptions(profile=PROFILE, arch=("x86", "arm"), force=True,
                                                       name="imagekit-bench-{arch}-{build_id}"), lambda line: None)
    seconds = {s["architecture"]: s["seconds"] for s in result["snapshots"]}
    for made in result["snapshots"]:
        b.client.images.get_by_id(made["snapshot_id"]).delete()
    return {"arch_build_seconds": seconds, "arm_build_over_x86_build": round(seconds["arm"] / seconds["x86"], 2)}
