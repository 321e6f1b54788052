"""How a guest is confined: its own user namespace, cgroups with its limits, and no system call nspawn's default
filter leaves out, and the small launcher that starts systemd-nspawn that way.

systemd-nspawn's documentation is plain that without a user namespace its sandbox "can easily be circumvented"
by the guest's root. So a guest runs in a user namespace of its own (``--private-users=pick``: 65536 host uids
from 524288 up, picked per machine, none shared with the host or another guest), and its root is an
unprivileged user on the host: no capability of the host's (``mknod`` of a device, a mount of a device, a
cgroup's device list or limits are refused), files it makes on the host belong to its range, and the kernel's
keyrings, BPF and the host's sysctls are out of its reach. Its disk is mapped into that range by an idmapped
mount (``--private-users-ownership=map``, never ``chown``): on disk every file keeps its uid, so a snapshot
stays a plain image that boots anywhere, on Hetzner included.

Docker inside still runs containers: runc joins a new session keyring for each, and takes ENOSYS (the kernel
has no keyrings) for an answer but not EPERM (what nspawn's filter gives a call it leaves out). nspawn's
``--system-call-filter`` cannot choose the errno, so the launcher installs a filter of its own before it execs
nspawn, inherited by the guest: ``add_key`` and ``keyctl`` answer ENOSYS. nspawn's filter lets the two through
(``KEYRING_CALLS`` below), and of two filters the kernel takes the one that refuses. ``bpf`` stays out (EPERM):
systemd in the guest then runs units without their BPF settings (``IPAddressDeny=``, ``DevicePolicy=``; the
agent's denial of the metadata address is an nftables rule in the image for that reason), and runc skips its
device programs in a user namespace; the guest's devices cgroup (``cgroups.DEVICES``) is the device list.
An arm guest's programs run through qemu-user (``host/binfmt``), which makes their calls as x86-64 ones: the
same filters hold for them (and for x86 code a guest might get qemu to run).

What a guest can still do that a VM's guest could not (what only a real VM closes):
- it shares the host's kernel: a kernel bug reachable from a user namespace (and unprivileged user namespaces
  are reachable: nested ones for Docker) is a way out; a VM adds a hypervisor in between;
- it shares the host's pid space, page cache and memory bandwidth, CPU caches and scheduler (side channels, a
  noisy neighbour within the limits), its entropy pool, clock and uptime, and sees the host's kernel version,
  CPU model and its load in /proc;
- ``net.*`` sysctls are its own; a kernel module, a host sysctl, the host's time or a device are not;
- its disk is a subvolume of a shared, thinly provisioned pool: its quota stops one guest at its type's disk,
  not all of them together at the pool's size; a subvolume it creates by the raw ioctl with an explicit, empty
  list of quota groups escapes its quota (see ``diskquota``);
- nothing caps its disk bandwidth (see ``cgroups``).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("localcloud")

USER_NAMESPACE = ["--private-users=pick", "--private-users-ownership=map"]
KEYRING_CALLS = ("add_key", "keyctl")
NSPAWN_CONFINEMENT = [*USER_NAMESPACE, f"--system-call-filter={' '.join(KEYRING_CALLS)}"]

# Every guest's inotify instances (systemd's, journald's, ... ~10 a guest) count against the host root's limit
# (user namespaces charge their creator too), which is 128 by default: about a dozen guests on the whole host.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_FOR_GUESTS = 8192

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_FLTATR_CTL_NNP = 3
_SECONDARY_ARCHES = (b"x86", b"x32")  # 32-bit and x32 programs in the guest go through the same filter


def host_ready(limit: Path = INOTIFY_INSTANCES) -> None:
    """Raise the host's inotify instance limit to what a few hundred guests need (never lower it); a guest
    whose systemd gets no inotify instance does not boot ("Failed to allocate manager object")."""
    try:
        if int(limit.read_text()) < INOTIFY_FOR_GUESTS:
            limit.write_text(str(INOTIFY_FOR_GUESTS))
            log.info("raised %s to %s for the guests' systemd", limit, INOTIFY_FOR_GUESTS)
    except OSError as exc:
        log.warning("cannot raise %s (%s): guests beyond a dozen on this host may not boot", limit, exc)


def launcher(procs: list, cmd: list[str]) -> list[str]:
    """The command line that joins the cgroups (their ``cgroup.procs`` files; none where they could not be made),
    installs the keyring filter and execs ``cmd`` (so the pid stays nspawn's)."""
    return [sys.executable, "-m", "localcloud.guests.confinement", *map(str, procs), "--", *cmd]


def keyrings_unsupported() -> None:
    """Make add_key and keyctl answer ENOSYS for this process and everything it starts, 32-bit calls included.

    No no_new_privs: root loads it with CAP_SYS_ADMIN, and set-uid programs (sudo) in the guest keep working."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    c_ctx, u32 = ctypes.c_void_p, ctypes.c_uint32
    lib.seccomp_init.restype, lib.seccomp_init.argtypes = c_ctx, [u32]
    lib.seccomp_attr_set.argtypes = [c_ctx, ctypes.c_int, u32]
    lib.seccomp_arch_resolve_name.restype, lib.seccomp_arch_resolve_name.argtypes = u32, [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [c_ctx, u32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [c_ctx, u32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = lib.seccomp_release.argtypes = [c_ctx]
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set")
        for arch in _SECONDARY_ARCHES:
            token = lib.seccomp_arch_resolve_name(arch)
            if token and lib.seccomp_arch_add(ctx, token) not in (0, -errno.EEXIST):
                raise OSError(f"seccomp_arch_add {arch.decode()} failed")
        for name in KEYRING_CALLS:
            call = lib.seccomp_syscall_resolve_name(name.encode())
            _check(lib.seccomp_rule_add(ctx, _SCMP_ACT_ERRNO | errno.ENOSYS, call, 0), f"seccomp_rule_add {name}")
        _check(lib.seccomp_load(ctx), "seccomp_load")
    finally:
        lib.seccomp_release(ctx)


def _check(result: int, what: str) -> None:
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}")


def main(argv: list[str]) -> None:
    split = argv.index("--")
    for procs in argv[:split]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    keyrings_unsupported()
    os.execvp(argv[split + 1], argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
