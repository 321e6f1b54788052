"""What a build bakes in, before any server exists: a profile's `bundle:` and `images:` (relative to its file), the
snapshot's labels and the inputs they add to the hash, the refusals (a registry reference on the local cloud, a
file that is not a `docker save` archive, a `--container-image` not baked), and the confined `docker run` line."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from imagekit import bake, bundledigest, profiles
from imagekit.data import path as data_path
from imagekit.errors import InputError
from imagekit.jobs import container
from imagekit.jobs.options import JobOptions, check_options
from localcloud.host import dockerarchive

AGENT = Path(__file__).parents[1] / "e2e" / "baked_agent"


@pytest.fixture
def archive(tmp_path) -> Path:
    return dockerarchive.write(tmp_path / "tool.tar", "example/tool:1", b"\x7fELF not really busybox")


@pytest.fixture
def playbooks(tmp_path, monkeypatch) -> Path:
    shutil.copytree(data_path("playbooks"), tmp_path / "playbooks")
    monkeypatch.setenv("IMAGEKIT_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    return tmp_path / "playbooks" / "profiles" / "agent.yml"


def test_a_profile_names_its_bundle_and_images_relative_to_its_file(playbooks, archive):
    shutil.copytree(AGENT, playbooks.parent / "code")
    shutil.copy(archive, playbooks.parent / "tool.tar")
    playbooks.write_text(playbooks.read_text() + "bundle: code\nimages: [tool.tar, ghcr.io/example/x:2]\n")
    p = profiles.load("agent")
    assert p.bundle == str(playbooks.parent / "code") and p.images == (str(playbooks.parent / "tool.tar"),
                                                                      "ghcr.io/example/x:2")
    b = bake.resolve(p, None, [], local=False)
    assert b.digest == bundledigest.digest(AGENT) and [i.reference for i in b.images] == ["example/tool:1",
                                                                                        "ghcr.io/example/x:2"]
    assert b.labels() == {"bundle-digest": b.digest, bake.image_label("example/tool:1"): "yes",
                          bake.image_label("ghcr.io/example/x:2"): "yes"}
    assert bake.expectations(b) == {"baked_images": ["example/tool:1", "ghcr.io/example/x:2"], "baked_code": {
        "entrypoint": "/opt/openclaw/agent/index.js", "npm": True}}
    with pytest.raises(InputError, match="ghcr.io/example/x:2: the local cloud reaches no registry"):
        bake.resolve(p, None, [], local=True)


@pytest.mark.parametrize("entry, message", [("images: [1]", "images must be a list"),
                                            ("bundle: ''", "bundle must be the path")])
def test_bad_bake_data_is_refused(playbooks, entry, message):
    playbooks.write_text(playbooks.read_text() + entry + "\n")
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.load("agent")


def test_a_file_that_is_no_docker_save_archive_is_refused_naming_it(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar")
    with pytest.raises(InputError, match="bad.tar: not a `docker save` archive"):
        bake.resolve(profiles.load("agent"), None, [str(bad)], local=True)


def test_the_baked_inputs_change_the_hash_only_when_something_is_baked(archive, tmp_path):
    nothing = bake.resolve(profiles.load("agent"), None, [], local=True)
    assert nothing.labels() == {} and not any(nothing.inputs().values())
    code = bake.resolve(profiles.load("agent"), AGENT, [str(archive)], local=True).inputs()
    other = tmp_path / "other"
    shutil.copytree(AGENT, other)
    (other / "README").write_text("more\n")
    assert bake.resolve(profiles.load("agent"), other, [str(archive)], local=True).inputs() != code


class Image:
    id, description = 7, "imagekit-agent-x"

    def __init__(self, labels):
        self.labels = labels


def test_only_a_baked_reference_runs():
    baked = Image({bake.image_label("example/tool:1"): "yes"})
    bake.require_baked(baked, "example/tool:1")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"--container-image example/tool:2: not baked into snapshot 7"):
        bake.require_baked(baked, "example/tool:2")  # type: ignore[arg-type]


@pytest.mark.parametrize("change, message", [({"mode": "fallback"}, "a fallback host has none"),
                                             ({"container_image": None}, "--container-network goes with")])
def test_container_options_are_checked_before_anything_exists(change, message):
    o = JobOptions(job_ids=["j"], command=["true"], container_image="example/tool:1", container_network=True)
    for key, value in change.items():
        setattr(o, key, value)
    with pytest.raises(InputError, match=message):
        check_options(o)


def test_the_container_is_confined_and_removed_whatever_happens():
    line = container.command("imagekit-job-j", "openclaw", "/opt/openclaw/jobs/j", "/run/imagekit-jobs/j.env",
                             {"JOB_ID": "j"}, ["TOKEN"], "example/tool:1", False, 60, 5, ["sh", "-c", "echo $TOKEN"])
    run = shlex.split(line.split(" </dev/null")[0].split("&& /usr/bin/timeout ", 1)[1])
    for flag in ("--cap-drop=ALL", "--security-opt=no-new-privileges", "--read-only", "--network=none",
                 "--pull=never", f"--pids-limit={container.PIDS_LIMIT}", "--volume=/opt/openclaw/jobs/j:/work",
                 "--env=TOKEN", "--env=JOB_ID=j", '--user=$uid'):
        assert flag in run, flag
    assert run[-4:] == ["example/tool:1", "sh", "-c", "echo $TOKEN"]  # the command untouched, after the image
    assert line.startswith("set -a && . /run/imagekit-jobs/j.env && set +a && ")  # secrets never on a command line
    assert line.endswith("rc=$?; docker rm --force imagekit-job-j >/dev/null 2>&1; exit $rc")
    assert "--network=bridge" in container.command("n", "u", "/w", None, {}, [], "i", True, 1, 1, ["true"])
