"""The inputs-hash a build labels its snapshot with, and its reuse: the hash is the same for two builds
of the same inputs and changes with any input; a young enough snapshot of the same hash is handed out
instead of a build. The build path runs against the local cloud's API in this process (no machines)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest
from api_records import add_snapshot

from imagekit import build_inputs
from imagekit.build import BuildOptions, build_snapshot
from imagekit.cloud import api as cloudapi
from imagekit.command import number
from imagekit.data import path as data_path
from imagekit.errors import InputError
from imagekit.steps.install import playbook_variables

BASE_IMAGE_ID = 114690387


def digest(package_source: str = "local", base_image_id: int = BASE_IMAGE_ID, build_id: str = "20260101000000-aaaaaa",
           architecture: str = "x86", **per_build: str) -> str:
    variables = playbook_variables("agent", "debian-12", package_source, True, build_id)
    return build_inputs.inputs_hash("agent", {**variables, **per_build}, base_image_id, architecture)


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A copy of imagekit's data the hash reads instead of the package's (playbooks, clean script, checks)."""
    copy = tmp_path / "data"
    shutil.copytree(data_path(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(data_path("playbooks"), copy / "playbooks")  # at the top of the checkout, not in the package
    monkeypatch.setattr(build_inputs, "data_path", lambda *parts: copy.joinpath(*parts))
    monkeypatch.setenv("IMAGEKIT_PLAYBOOKS_DIR", str(copy / "playbooks"))
    return copy


def test_the_hash_fits_a_label_and_is_the_same_for_two_builds_of_the_same_inputs(data):
    first = digest()
    assert len(first) == 40 and int(first, 16) >= 0  # hex, and within a label value's 63 characters
    assert digest(build_id="20261231235959-bbbbbb", built_at="2026-12-31T23:59:59+00:00",
                  source_revision="0123456789ab") == first
    (data / "checks" / "__pycache__").mkdir()  # pytest's bytecode beside the checks is no input
    (data / "checks" / "__pycache__" / "test_image.cpython-311-pytest-8.3.pyc").write_bytes(b"\x00bytecode")
    assert digest() == first


def extra_step(data):
    book = data / "playbooks" / "agent.yml"
    book.write_text(book.read_text().replace("\nsteps:\n", "\nsteps:\n  - name: one more step\n    run: 'true'\n"
                                             "    creates: /etc/one-more-step\n", 1))


def append(relative: str, text: str):
    return lambda data: (data / relative).write_text((data / relative).read_text() + text)


CHANGES = {
    "a playbook step": extra_step,
    "the OS data": lambda data: (data / "playbooks/os/debian-12.yml").write_text(
        (data / "playbooks/os/debian-12.yml").read_text().replace("compose_package: docker-compose ",
                                                                  "compose_package: docker-compose-v2 ")),
    "the clean script": append("clean_image.sh", "\ntrue\n"),
    "a check": append("checks/test_image.py", "\n# one more fact\n"),
    "a new check file": lambda data: (data / "checks" / "test_more.py").write_text("def test_more():\n    pass\n"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_the_hash_changes_with_the_playbooks_the_clean_script_and_the_checks(data, change):
    before = digest()
    CHANGES[change](data)
    assert digest() != before


def test_the_hash_changes_with_the_base_image_the_architecture_the_package_source_and_imagekits_version(
        data, monkeypatch):
    before = digest()
    assert digest(base_image_id=BASE_IMAGE_ID + 1) != before
    assert digest(architecture="arm") != before  # the same base id notwithstanding: each reuses its own
    assert digest(package_source="vendor") != before
    monkeypatch.setattr(build_inputs.metadata, "version", lambda name: "999.0")
    assert digest() != before


def test_max_age_must_be_a_positive_number_of_days(api, clean_settings):
    with pytest.raises(InputError, match=r"--max-age 0: give a number of days above 0"):
        build_snapshot(api.target, BuildOptions(max_age=0), lambda line: None)
    with pytest.raises(InputError, match="--max-age 'soon': give a number of days"):
        number("--max-age", "soon", "days")


@pytest.fixture
def snapshots(api):
    """Snapshot records of profile agent labelled with an inputs-hash, removed after the test (other tests
    expect no snapshot of that profile)."""
    made = []

    def add(inputs: str, age_days: float = 0.01, status: str = "available", profile: str = "agent") -> int:
        created = (datetime.now(timezone.utc) - timedelta(days=age_days)).isoformat(timespec="seconds")
        iid = add_snapshot(api.cloud, status=status, profile=profile, created=created)
        api.cloud.store["images"][iid]["labels"][build_inputs.LABEL] = inputs
        made.append(iid)
        return iid

    yield add
    for iid in made:
        api.cloud.store["images"].pop(iid, None)


def test_only_an_available_young_enough_snapshot_of_the_profile_and_hash_is_reusable(api, snapshots):
    client = cloudapi.connect(api.target)
    young = snapshots("h1", age_days=2)
    snapshots("h1", age_days=1, status="creating")
    snapshots("h1", age_days=0.5, profile="other")
    snapshots("h2", age_days=0.1)
    image, age = build_inputs.reusable_snapshot(client, "agent", "h1", 7)
    assert image.id == young and 1.99 < age < 2.01
    assert build_inputs.reusable_snapshot(client, "agent", "h1", 1.5) is None  # too old for --max-age 1.5
    assert build_inputs.reusable_snapshot(client, "agent", "h3", 7) is None


def test_a_build_of_the_same_inputs_reuses_the_snapshot_and_creates_nothing(api, clean_settings, snapshots):
    client = cloudapi.connect(api.target)
    base = client.images.get_by_name_and_architecture("debian-12", "x86")
    inputs = build_inputs.inputs_hash("agent", playbook_variables("agent", "debian-12", None, False, "x"), base.id,
                                      "x86")
    made = snapshots(inputs, age_days=3)
    before = {kind: sorted(api.cloud.store[kind]) for kind in ("servers", "ssh_keys", "images")}
    lines = []
    result = build_snapshot(api.target, BuildOptions(), lines.append)
    assert {kind: sorted(api.cloud.store[kind]) for kind in before} == before
    assert result["reused"] is True and result["snapshot_id"] == made and result["inputs_hash"] == inputs
    assert result["durations"] == {} and result["seconds"] == 0 and 2.99 < result["age_days"] < 3.01
    assert result["labels"][build_inputs.LABEL] == inputs
    assert f"reusing snapshot {made} " in lines[-1] and "3.0 days" in lines[-1] and "--force" in lines[-1]
