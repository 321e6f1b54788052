"""Run the testinfra checks (``imagekit/data/checks``) against a host over SSH to its pinned host key (the suite's
conftest.py connects through imagekit's SSH module): the image's facts, and on a provisioned host the agent's
too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..data import path as data_path
from ..errors import HostError
from .hostkey import Pin
from .keys import KeyPair, save_private

IMAGE = ("test_image.py",)
AGENT_HOST = ("test_image.py", "test_agent.py")


class ChecksFailed(HostError):
    pass


def run_checks(ip: str, key: KeyPair, pin: Pin, expect: dict[str, Any], *, clone: bool,
               suites: tuple[str, ...] = IMAGE) -> None:
    """Raise ChecksFailed listing the failing checks; the key lives in a 0600 file of a temp dir only."""
    checks = data_path("checks")
    with tempfile.TemporaryDirectory(prefix="imagekit-checks-") as tmp:
        key_file = save_private(key, Path(tmp) / "id_ed25519")
        expect_file = Path(tmp) / "expect.json"
        expect_file.write_text(json.dumps(expect))
        env = dict(os.environ, IMAGEKIT_EXPECT_FILE=str(expect_file), IMAGEKIT_CLONE="1" if clone else "0",
                   IMAGEKIT_CHECK_HOST=ip, IMAGEKIT_CHECK_KEY=str(key_file), IMAGEKIT_CHECK_PIN=pin.fingerprint,
                   IMAGEKIT_CHECK_SERVER_ID=str(pin.server_id), IMAGEKIT_CHECK_SERVER_NAME=pin.name)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *(str(checks / name) for name in suites), "-q", "-p", "no:cacheprovider",
             "-o", "addopts=", "--rootdir", str(checks), "-rf", "--tb=line"],
            capture_output=True, text=True, env=env, timeout=900, cwd=tmp)
    if proc.returncode != 0:
        failing = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
        # no FAILED line: pytest itself broke (an import, a usage error), and says why on stderr
        said = failing or (proc.stdout + proc.stderr).splitlines()[-30:]
        raise ChecksFailed("host checks failed:\n" + "\n".join(said))
