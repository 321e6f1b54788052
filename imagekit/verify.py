"""Run testinfra suites (imagekit/checks) against a host over SSH: the image's facts, and on a
provisioned host the agent's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .keys import KeyPair

SUITE = Path(__file__).with_name("checks")
IMAGE = ("test_image.py",)
AGENT_HOST = ("test_image.py", "test_agent.py")


class VerificationFailed(RuntimeError):
    pass


def run_suite(ip: str, key: KeyPair, expect: dict, *, clone: bool, suites: tuple[str, ...] = IMAGE) -> None:
    """Raise VerificationFailed listing the failing checks; the key lives in a 0600 temp dir only."""
    with tempfile.TemporaryDirectory(prefix="imagekit-verify-") as tmp:
        key_file = Path(tmp) / "id_ed25519"
        key_file.write_text(key.private_openssh)
        key_file.chmod(0o600)
        expect_file = Path(tmp) / "expect.json"
        expect_file.write_text(json.dumps(expect))
        env = dict(os.environ, IMAGEKIT_EXPECT_FILE=str(expect_file), IMAGEKIT_CLONE="1" if clone else "0")
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *(str(SUITE / name) for name in suites), "-q", "-p", "no:cacheprovider",
             "-o", "addopts=",
             f"--hosts=paramiko://root@{ip}?timeout=30", f"--ssh-identity-file={key_file}", "-rf", "--tb=line"],
            capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        failing = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
        raise VerificationFailed("host checks failed:\n" + "\n".join(failing or proc.stdout.splitlines()[-30:]))
