"""A plain (non-editable) install into a fresh virtual environment ships everything: the `imagekit`
command lists its tasks and renders an agent's user data from the packaged templates and agent. An editable
install (what CI and the workflows use) finds playbooks/ and cloudinit/ at the top of the checkout."""

from __future__ import annotations

import subprocess
import venv

import pytest
from operator_cli import ROOT

pytestmark = pytest.mark.e2e


def install(tmp_path_factory, *how: str):
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([env_dir / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", *how,
                          str(ROOT)], capture_output=True, text=True, timeout=900, cwd=tmp_path_factory.mktemp("cwd"))
    assert pip.returncode == 0, pip.stderr[-3000:]
    return env_dir


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    return install(tmp_path_factory)


WHERE = "import imagekit, localcloud; from imagekit.data import path; print(imagekit.__file__, path('playbooks'), " \
        "path('cloudinit'))"


def run(installed, *args: str, cwd, program: str = "imagekit", **env_extra: str) -> subprocess.CompletedProcess:
    """``program`` of the virtual environment, in an environment of its own (no PYTHONPATH to a checkout)."""
    env = {"PATH": f"{installed}/bin:/usr/bin:/bin", "HOME": str(cwd), **env_extra}
    return subprocess.run([installed / "bin" / program, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env)


def test_the_package_is_not_the_checkout(installed):
    where = run(installed, "-c", WHERE, cwd=installed, program="python")
    assert where.returncode == 0, where.stderr
    assert all(p.startswith(str(installed)) for p in where.stdout.split()) and str(ROOT) not in where.stdout


def test_an_editable_install_reads_the_playbooks_and_templates_of_the_checkout(tmp_path_factory, tmp_path):
    editable = install(tmp_path_factory, "-e")
    where = run(editable, "-c", WHERE, cwd=tmp_path, program="python")
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(ROOT / "imagekit/__init__.py"), str(ROOT / "playbooks"),
                                    str(ROOT / "cloudinit")]
    proc = run(editable, "render-cloud-init", "--agent-id", "a", cwd=tmp_path)
    assert proc.returncode == 0 and "AGENT_ID=a" in proc.stdout, proc.stderr


def test_imagekit_lists_its_tasks(installed, tmp_path):
    proc = run(installed, "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("build-snapshot", "provision", "render-cloud-init", "cloud-up", "gc"):
        assert name in proc.stdout


def test_imagekit_renders_cloud_init_from_packaged_data(installed, tmp_path):
    proc = run(installed, "render-cloud-init", "--agent-id", "a", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#cloud-config\n") and "AGENT_ID=a" in proc.stdout
    assert "bundle.tar.gz" in proc.stdout and "MASKED" in proc.stdout


def test_without_the_local_cloud_extra_a_missing_token_is_a_clear_error(installed, tmp_path):
    proc = run(installed, "list", cwd=tmp_path, IMAGEKIT_LOCALCLOUD_DIR=str(tmp_path / "no-cloud"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: list: ")
    assert "imagekit[localcloud]" in proc.stderr
