"""What the session's snapshot has baked in (conftest: the test agent with a real npm dependency, and a `docker
save` archive of a busybox-static image), proven without a build of its own: the snapshot's labels name the code's
tree digest and the image; a job runs the baked image as a confined container on a host that reaches no registry
(the local cloud's guests have no uplink, and `docker run --pull=never`), its output and exit code come back; an
image that is not baked is refused before anything is created. The image checks (data/checks) found the code, its
installed dependency and the image in Docker's storage during the session's build."""

from __future__ import annotations

import json

import pytest
from conftest import BAKED_AGENT, BAKED_IMAGE
from operator_cli import invoke

from imagekit import bake, bundledigest

pytestmark = pytest.mark.e2e

# What the container finds out about itself, into outputs/ (the work directory is mounted at /work).
PROBE = ("id -u > outputs/uid; grep CapEff /proc/self/status > outputs/caps; echo $JOB_ID > outputs/job; "
         "(touch /etc/x 2>/dev/null && echo writable || echo read-only) > outputs/root; "
         "cat /proc/net/dev > outputs/net; cat data.txt > outputs/copy; echo out; exit 7")


def test_the_snapshot_is_labelled_with_its_code_and_images(built):
    result, _ = built
    labels = result["labels"]
    assert labels[bundledigest.BUNDLE_LABEL] == bundledigest.digest(BAKED_AGENT) == result["bundle_digest"]
    assert labels[bake.image_label(BAKED_IMAGE)] == "yes" and result["images"] == [BAKED_IMAGE]
    assert result["durations"]["agent code"] > 0 and result["durations"]["container images"] > 0


def test_a_job_runs_a_baked_image_confined_and_its_output_comes_back(snapshot, cloud_unchanged, tmp_path):
    work, outputs = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    (work / "data.txt").write_text("from the operator\n")
    proc = invoke("run", "--job-id", "boxed", "--container-image", BAKED_IMAGE, "--workdir", str(work),
                  "--outputs", str(outputs), "--json", "--", "sh", "-c", PROBE, timeout=600)
    assert proc.returncode == 7, proc.stderr[-3000:]  # the container's own exit code
    [job] = json.loads(proc.stdout)["jobs"]
    assert job["exit_code"] == 7 and "[boxed] out" in proc.stderr
    got = {f.name: f.read_text() for f in (outputs / "boxed").iterdir()}
    assert got["uid"].strip() != "0" and got["caps"].split()[-1] == "0000000000000000", got
    assert got["job"] == "boxed\n" and got["root"] == "read-only\n" and got["copy"] == "from the operator\n"
    assert [line.split(":")[0].strip() for line in got["net"].splitlines()[2:]] == ["lo"], got["net"]  # no network


def test_an_image_not_baked_is_refused_before_anything_is_created(snapshot, cloud_unchanged):
    proc = invoke("run", "--job-id", "nobox", "--container-image", "registry.example/other:2", "--", "true",
                  timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: run: --container-image registry.example/other:2: not baked into snapshot "), proc.stderr[-2000:]
