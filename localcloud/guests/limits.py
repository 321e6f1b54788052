"""What a guest may use, from its server type: the limits a Hetzner server type implies, made to hold on a host
whose kernel every guest shares.

- memory: the type's memory (a VM of 4 GB cannot use more; here the kernel's OOM killer picks in the guest's own
  memory cgroup, not among the host's processes), swap included where the host has any (Hetzner's VMs have none);
- tasks: ``PIDS``, the same for every type. A VM has a kernel and a pid space of its own; guests share the host's
  (``kernel.pid_max`` is 32768 on a host without systemd's sysctl), so one guest's fork bomb would starve every
  guest and the host. A booted agent host with Docker and a container runs ~120 tasks; 4096 leaves any real
  workload room and keeps one bomb to an eighth of the smallest pid space;
- CPU weight: ``cpu.shares`` in proportion to the type's cores (1024, the kernel's default, for 2 cores): under
  contention guests share the host's CPUs as their types' sizes; an idle host lets any guest use all of them;
- disk: a quota of the type's disk on the guest's disk (see ``storage``).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30
PIDS = 4096
SHARES_PER_CORE = 512


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpu_shares: int
    disk_bytes: int

    @classmethod
    def of_type(cls, stype: dict) -> Limits:
        """The limits of a server type (a catalogue record: ``cores``, ``memory`` and ``disk`` in GB)."""
        return cls(memory_bytes=int(stype["memory"] * GIB), pids=PIDS, cpu_shares=SHARES_PER_CORE * stype["cores"],
                   disk_bytes=int(stype["disk"] * GIB))
