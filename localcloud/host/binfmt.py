"""Arm guests' programs run through qemu-user: the local cloud registers an aarch64 handler with the kernel's
binfmt_misc at start and removes it at stop, unless another local cloud on this host still uses it.

There is no systemd on the host to register handlers at boot, and binfmt_misc is one table for the whole host
(every local cloud, every guest): so the handler has a name of its own (``imagekit-aarch64``, never the
``qemu-aarch64`` an operator's binfmt-support may manage), and each local cloud that uses it holds a shared
``flock`` on one file for its life. The one that stops and can take that lock exclusively is the last user: it
removes the handler. The kernel drops a dead process's lock, so a killed local cloud never pins the handler; it
stays registered, unused, until the next local cloud stops. Guests cannot change it (kernels from 6.7 on give a
user namespace that mounts binfmt_misc a table of its own, seen by no one else).

Flags ``POCF``: P keeps a program's argv[0], O and C give a set-uid program (sudo) its own credentials as on a
real arm machine, F makes the kernel open qemu now, so that it runs inside guests' roots, which do not have it.
The emulator is Debian 12's ``qemu-user-static``: what it cannot do for a guest is in ``archimage``.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import IO

from .hostcmd import HostCommandError, run

log = logging.getLogger("localcloud")

NAME = "imagekit-aarch64"
QEMU = Path("/usr/bin/qemu-aarch64-static")
# An aarch64 ELF executable or shared object (e_machine 0xb7), as Debian's qemu-user-static matches it.
MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
FLAGS = "POCF"
MISC = Path("/proc/sys/fs/binfmt_misc")
USERS = Path("/run/imagekit/binfmt-aarch64.users")


class Aarch64Handler:
    """The handler while this local cloud uses it: ``enable`` at start, ``disable`` at stop."""

    def __init__(self, name: str = NAME, users: Path = USERS, qemu: Path = QEMU, misc: Path = MISC):
        self.name, self.users_file, self.qemu, self.misc = name, users, qemu, misc
        self._lock: IO | None = None

    @property
    def entry(self) -> Path:
        return self.misc / self.name

    def enable(self) -> str | None:
        """Use the handler (registering it if need be); None when this host now runs arm64 programs, else why
        not, with the operator's fix."""
        if not self.qemu.exists():
            return f"{self.qemu} is missing: apt-get install qemu-user-static (or bash .ci/setup)"
        if not (self.misc / "register").exists():
            try:
                run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(self.misc)])
            except (HostCommandError, OSError) as exc:
                return (f"binfmt_misc cannot be mounted on {self.misc} ({exc}); arm guests need a host whose kernel "
                        "has binfmt_misc and lets root mount it")
        self.users_file.parent.mkdir(parents=True, exist_ok=True)
        lock = open(self.users_file, "a")  # not inherited by guests (PEP 446)
        fcntl.flock(lock, fcntl.LOCK_SH)  # waits while a last user removes the handler
        try:
            if not self.entry.exists():
                self._register()
            problem = self._unusable()
        except OSError as exc:
            problem = f"the kernel refused the {self.name} binfmt_misc handler ({exc})"
        if problem:
            lock.close()
            return problem
        self._lock = lock
        return None

    def disable(self) -> None:
        """Stop using the handler; remove it when no other local cloud on this host uses it."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("binfmt handler %s stays: another local cloud on this host uses it", self.name)
        else:
            if self.entry.exists():
                self.entry.write_text("-1")
                log.info("binfmt handler %s removed", self.name)
        finally:
            lock.close()

    def _register(self) -> None:
        try:
            (self.misc / "register").write_text(f":{self.name}:M::{MAGIC}:{MASK}:{self.qemu}:{FLAGS}")
            log.info("binfmt handler %s registered (%s, flags %s)", self.name, self.qemu, FLAGS)
        except FileExistsError:  # another local cloud registered it a moment ago
            pass

    def _unusable(self) -> str | None:
        lines = self.entry.read_text().splitlines()
        if "enabled" not in lines:
            return f"the binfmt_misc handler {self.entry} is disabled: echo 1 > {self.entry}"
        flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
        if "F" not in flags:
            return f"the binfmt_misc handler {self.entry} lacks the F flag (guests' roots have no qemu): " \
                   f"echo -1 > {self.entry} and start the local cloud again"
        return None
