"""The import contracts in .importlinter: kept by the code today, and able to catch a breach (an import loop in
imagekit among them, made of an import inside a function and one for type checking only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / ".importlinter"
CONTRACTS = ("localcloud imports nothing from imagekit",
             "imagekit reaches localcloud through localcloud.client only",
             "localcloud.client needs the standard library and stdlib-only modules",
             "localcloud in layers: server > api | tailscale > engine > metadata > guests > host > state",
             "imagekit has no import loop")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd), COLUMNS="200")  # contract names on one line each
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--config", str(CONFIG)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_code_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_each_contract_catches_a_breach(tmp_path):
    """The same config over a small tree that breaks each contract once must fail, naming each breach."""
    layers = ("server", "api", "tailscale", "engine", "metadata", "guests", "host", "state")
    write(tmp_path, {
        "imagekit/__init__.py": "",
        "imagekit/fine.py": "from localcloud import client\n",
        "imagekit/sneaky.py": "from localcloud.engine import cloud\n",
        "imagekit/first.py": "def late():\n    from . import second\n",
        "imagekit/second.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import first\n",
        "localcloud/__init__.py": "",
        "localcloud/paths.py": "",
        "localcloud/apilock.py": "from . import paths\n",
        "localcloud/environment.py": "",
        "localcloud/client.py": "from . import apilock, environment, paths\nfrom .host import dockerarchive\n"
                                "import fastapi\n",
        "localcloud/host/dockerarchive.py": "",
        **{f"localcloud/{layer}/__init__.py": "" for layer in layers},
        "localcloud/engine/cloud.py": "import imagekit.fine\n",
        "localcloud/state/store.py": "from ..engine import cloud\n",
    })
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} BROKEN" in result.stdout
    assert "imagekit.sneaky -> localcloud.engine.cloud" in result.stdout
    assert "localcloud.engine.cloud -> imagekit.fine" in result.stdout
    assert "localcloud.client -> fastapi" in result.stdout
    assert "localcloud.state.store -> localcloud.engine.cloud" in result.stdout
    assert "No cycles are allowed in imagekit." in result.stdout
