"""x86 and Arm from one build (issue 27, item 4), without machines: the architectures asked for, a builder of the
wrong architecture refused before anything is made, reuse per architecture, prune keeping N of each, parallel
builds (one failing stops the other and deletes its snapshot; the error names the architecture), and a roll that
picks each agent's architecture's snapshot. The API runs in this process (conftest)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from api_records import add_server, add_snapshot

from imagekit import build_inputs, multiarch, settings
from imagekit.build import BuildOptions, build_snapshot
from imagekit.cloud import api as cloudapi
from imagekit.errors import HostError, ImagekitError, InputError
from imagekit.fleet.prune import prune_snapshots
from imagekit.fleet.roll.plan import RollOptions
from imagekit.fleet.roll.run import roll_fleet
from imagekit.host import hostkey
from imagekit.pipeline import Interrupted, StepFailed
from imagekit.steps.install import playbook_variables


def test_arch_is_the_option_else_the_setting_in_order_without_repeats(clean_settings):
    assert settings.arch(None) == ()  # the server type decides, as before
    assert settings.arch("x86,arm") == ("x86", "arm") and settings.arch(" arm, arm ") == ("arm",)
    clean_settings.setenv("IMAGEKIT_ARCH", "arm,x86")
    assert settings.arch(None) == ("arm", "x86") and settings.arch("x86") == ("x86",)
    with pytest.raises(InputError, match="aarch64 is not an architecture; give x86, arm or x86,arm"):
        settings.arch("x86,aarch64")


def test_each_architecture_builds_on_a_type_of_its_own():
    assert multiarch.builders((), "cax21", "cax11") == [(None, "cax21")]
    assert multiarch.builders(("x86", "arm"), "cx33", "cax21") == [("x86", "cx33"), ("arm", "cax21")]
    with pytest.raises(InputError, match=r"put \{arch\} or \{build_id\} in it"):
        multiarch.check_names(["nightly", "nightly"])


def store_kinds(api):
    return {kind: sorted(api.cloud.store[kind]) for kind in ("servers", "ssh_keys", "images")}


def test_a_builder_of_the_other_architecture_is_refused_before_anything_is_made(api, clean_settings):
    before = store_kinds(api)
    with pytest.raises(InputError, match="--arch arm: server type cx23 is x86; pass --arm-server-type with a type "
                                         "of arm"):
        build_snapshot(api.target, BuildOptions(arch=("x86", "arm"), arm_server_type="cx23"), lambda line: None)
    with pytest.raises(InputError, match="--arch x86: server type cax11 is arm; pass --server-type"):
        build_snapshot(api.target, BuildOptions(arch=("x86",), server_type="cax11"), lambda line: None)
    assert store_kinds(api) == before


@pytest.fixture
def records(api):
    """Snapshot and server records made by a test, removed after it (other tests expect none of profile agent)."""
    made: dict[str, list[int]] = {"images": [], "servers": []}
    yield made
    for kind, ids in made.items():
        for rid in ids:
            api.cloud.store[kind].pop(rid, None)


def snapshot(api, records, arch: str, profile: str = "agent", age_days: float = 0.01, **labels: str) -> int:
    created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - age_days * 86400))
    iid = add_snapshot(api.cloud, architecture=arch, profile=profile, created=created)
    api.cloud.store["images"][iid]["labels"].update(labels)
    records["images"].append(iid)
    return iid


def test_both_architectures_are_reused_each_from_its_own_snapshot(api, clean_settings, records):
    client = cloudapi.connect(api.target)
    variables = playbook_variables("agent", "debian-12", None, False, "x")
    made = {}
    for arch in ("x86", "arm"):
        base = client.images.get_by_name_and_architecture("debian-12", arch)
        made[arch] = snapshot(api, records, arch, **{build_inputs.LABEL: build_inputs.inputs_hash(
            "agent", variables, base.id, arch)})
    before = store_kinds(api)
    lines: list[str] = []
    result = build_snapshot(api.target, BuildOptions(arch=("x86", "arm")), lines.append)
    assert store_kinds(api) == before
    assert [(s["architecture"], s["snapshot_id"], s["reused"]) for s in result["snapshots"]] == [
        ("x86", made["x86"], True), ("arm", made["arm"], True)]
    assert any(line.startswith(f"[arm] reusing snapshot {made['arm']} ") for line in lines), lines


def test_prune_keeps_the_newest_n_of_each_profile_and_architecture(api, records):
    x86 = [snapshot(api, records, "x86", "pruned", age_days=d) for d in (3, 2, 1)]
    arm = [snapshot(api, records, "arm", "pruned", age_days=d) for d in (5, 4)]
    result = prune_snapshots(api.target, 1, "pruned", lambda line: None)
    assert sorted(result["deleted"]) == sorted(x86[:2] + arm[:1])
    assert result["kept"] == {"pruned": [x86[2]], "pruned/arm": [arm[1]]}
    assert {x86[2], arm[1]} <= set(api.cloud.store["images"]) and not set(x86[:2] + arm[:1]) & set(
        api.cloud.store["images"])


@dataclass
class FakeBuild:
    tag: str
    cancel: threading.Event = field(default_factory=threading.Event)
    made: int | None = None


def test_one_architecture_failing_stops_the_other_and_deletes_its_snapshot():
    x86, arm = FakeBuild("x86"), FakeBuild("arm")
    discarded: list[int] = []

    def deliver(job: FakeBuild) -> dict:
        if job.tag == "arm":
            raise HostError("host checks failed: docker")
        job.made = 7  # x86 made its snapshot; then it waits, as a long step does, until it is stopped
        deadline = time.monotonic() + 5
        while not job.cancel.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        raise StepFailed("playbooks", Interrupted("cancelled"))  # as run_steps reports a cancel

    def discard(job: FakeBuild) -> None:
        if job.made is not None:
            discarded.append(job.made)
            job.made = None

    with pytest.raises(ImagekitError, match=r"^the arm build failed: host checks failed: docker; the x86 build was "
                                            "stopped and what it made deleted: no snapshot was delivered$"):
        multiarch.in_parallel([x86, arm], deliver, discard, lambda line: None)
    assert discarded == [7] and x86.cancel is arm.cancel

    # Both succeed: the results in the order asked, nothing deleted.
    assert multiarch.in_parallel([FakeBuild("x86"), FakeBuild("arm")], lambda job: {"arch": job.tag}, discard,
                                 lambda line: None) == [{"arch": "x86"}, {"arch": "arm"}]
    assert discarded == [7]


def test_a_roll_picks_the_snapshot_of_each_agents_architecture(api, clean_settings, records):
    targets = {arch: snapshot(api, records, arch) for arch in ("x86", "arm")}
    for arch, server_type in (("x86", "cx23"), ("arm", "cax11")):
        sid = add_server(api.cloud, f"roll-{arch}", {"managed-by": "imagekit", "role": "agent", "profile": "agent",
                                                     "agent-id": f"roll-{arch}", "mode": "snapshot",
                                                     hostkey.LABEL: "pinned"})
        api.cloud.store["servers"][sid].update(server_type=server_type, image_id=targets[arch])
        records["servers"].append(sid)
    before = store_kinds(api)
    result = roll_fleet(api.target, RollOptions(), lambda line: None)
    # Each agent is on its architecture's newest snapshot already: nothing to move, nothing made.
    assert [(row["agent_id"], row["status"], row["new_snapshot_id"]) for row in result["agents"]] == [
        ("roll-arm", "current", targets["arm"]), ("roll-x86", "current", targets["x86"])]
    assert result["to"] == sorted(targets.values()) and store_kinds(api) == before


def test_list_shows_each_snapshots_architecture(api, records):
    from imagekit import render
    from imagekit.fleet.listing import list_managed

    made = snapshot(api, records, "arm", "listed")
    listed = list_managed(api.target)
    [row] = [s for s in listed["snapshots"] if s["snapshot_id"] == made]
    assert row["architecture"] == "arm" and row["profile"] == "listed"
    assert any(line.split()[:3] == [str(made), "listed", "arm"] for line in render.listing(listed).splitlines())
