"""The aarch64 binfmt_misc handler, registered in this host's kernel for real (root): an arm64 program runs, local
clouds share the handler, and the last one to stop removes it."""

from __future__ import annotations

import os
import secrets
import struct
import subprocess
from pathlib import Path

import pytest

from localcloud.host import binfmt

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not binfmt.QEMU.exists(),
                                reason="needs root and qemu-user-static (.ci/setup installs it)")


def arm64_exit(code: int) -> bytes:
    """A static aarch64 ELF program that exits with ``code``: movz x0, #code; movz x8, #93 (exit); svc #0."""
    text = struct.pack("<3I", 0xD2800000 | code << 5, 0xD2800000 | 93 << 5 | 8, 0xD4000001)
    base, size = 0x400000, 64 + 56 + len(text)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0xB7, 1, base + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + segment + text


@pytest.fixture
def handlers(tmp_path):
    """Two local clouds' handles on one handler of a test's own name; whatever the test leaves is removed."""
    name = f"imagekit-test-{secrets.token_hex(3)}"
    made = [binfmt.Aarch64Handler(name, users=tmp_path / "users") for _ in range(2)]
    yield made
    for handler in made:
        handler.disable()
    if made[0].entry.exists():
        made[0].entry.write_text("-1")


def test_an_arm64_program_runs_through_the_handler(tmp_path):
    """With qemu it exits 42; with /bin/false for an interpreter it exits 1, which proves that this handler is the
    one the kernel picked (the newest of several that match: a running local cloud has one too)."""
    program = tmp_path / "exit42"
    program.write_bytes(arm64_exit(42))
    program.chmod(0o755)
    for qemu, code in ((binfmt.QEMU, 42), (Path("/bin/false"), 1)):
        handler = binfmt.Aarch64Handler(f"imagekit-test-{secrets.token_hex(3)}", users=tmp_path / "users", qemu=qemu)
        try:
            assert handler.enable() is None
            assert "flags: POCF" in handler.entry.read_text()
            assert subprocess.run([str(program)]).returncode == code
        finally:
            handler.disable()
        assert not handler.entry.exists()


def test_the_last_local_cloud_to_stop_removes_it(handlers):
    one, two = handlers
    assert one.enable() is None and two.enable() is None
    one.disable()
    assert two.entry.exists(), "removed while another local cloud still used it"
    two.disable()
    assert not two.entry.exists()


def test_a_killed_local_cloud_does_not_keep_it(handlers):
    one, two = handlers
    assert one.enable() is None
    one._lock.close()  # what the kernel does to the lock of a process that is killed
    one._lock = None
    assert two.enable() is None
    two.disable()
    assert not two.entry.exists()


def test_a_handler_without_the_F_flag_is_refused_with_the_fix(handlers):
    one, _ = handlers
    (one.misc / "register").write_text(f":{one.name}:M::{binfmt.MAGIC}:{binfmt.MASK}:{binfmt.QEMU}:P")
    reason = one.enable()
    assert reason and "lacks the F flag" in reason and f"echo -1 > {one.entry}" in reason


def test_a_host_without_qemu_says_what_to_install(tmp_path):
    handler = binfmt.Aarch64Handler("imagekit-test-none", users=tmp_path / "users", qemu=tmp_path / "no-qemu")
    assert "apt-get install qemu-user-static" in handler.enable()
    assert not handler.entry.exists()
