"""Guests hold only the capabilities their workloads need (issue 11, item 2).

Guest root must not load kernel modules (the kernel is the host's), while what the agent
profile runs inside a guest (Docker with its bridge network, UFW, fail2ban) still works.
"""

from __future__ import annotations

import time

import pytest

from imagekit.host import ssh
from tests.localcloud.conftest import boot_server

pytestmark = pytest.mark.e2e

INSTALL = """#cloud-config
package_update: true
packages: [docker.io, ufw, fail2ban, python3-systemd]
write_files:
  - path: /etc/fail2ban/jail.d/sshd.local
    content: |
      [sshd]
      enabled = true
      backend = systemd
"""
# init_module(2) with an empty image: refused outright (no capability, or the syscall filtered),
# not EINVAL/ENOEXEC (a bad image, which means the kernel would have taken a good one).
LOAD_MODULE = ("python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
               "libc.init_module(b\"\", 0, b\"\"); print(os.strerror(ctypes.get_errno()))'")
# Capabilities guest root must not hold: modules, raw I/O, the host's clock, MAC policy, the kernel log.
FORBIDDEN = {16: "CAP_SYS_MODULE", 17: "CAP_SYS_RAWIO", 25: "CAP_SYS_TIME", 32: "CAP_MAC_OVERRIDE",
             33: "CAP_MAC_ADMIN", 34: "CAP_SYSLOG", 35: "CAP_WAKE_ALARM", 36: "CAP_BLOCK_SUSPEND"}
# The smallest image Docker can run: /usr/bin/true and the libraries it links.
DOCKER_RUN = """set -e
img=$(mktemp -d)
for f in /usr/bin/true $(ldd /usr/bin/true | grep -o '/[^ ]*'); do
  mkdir -p "$img$(dirname "$f")"; cp -L "$f" "$img$f"
done
tar -C "$img" -c . | docker import - tiny >/dev/null
docker run --rm tiny /usr/bin/true && echo docker-ran
"""


def test_guest_cannot_load_modules_but_docker_ufw_and_fail2ban_work(cloud_unchanged, keypair):
    client = cloud_unchanged
    server, key = boot_server(client, keypair, "caps-e2e", user_data=INSTALL)
    conn = ssh.wait_for_ssh(server.public_net.ipv4.ip, keypair, pin=None, deadline=time.monotonic() + 120)
    try:
        code, out, err = ssh.run(conn, "cloud-init status --wait", timeout=600)
        assert "status: done" in out, out + err
        assert ssh.run(conn, LOAD_MODULE)[1].strip() in ("Operation not permitted", "Function not implemented")
        bounding = int(ssh.run(conn, "awk '/^CapBnd/ {print $2}' /proc/1/status")[1], 16)
        assert [name for bit, name in FORBIDDEN.items() if bounding >> bit & 1] == []
        code, out, err = ssh.run(conn, DOCKER_RUN, timeout=120)
        assert code == 0 and "docker-ran" in out, out + err
        code, out, err = ssh.run(conn, "ufw --force enable && ufw allow 22/tcp && ufw status")
        assert code == 0 and "Status: active" in out, out + err
        code, out, err = ssh.run(conn, "systemctl restart fail2ban && sleep 2 && fail2ban-client status sshd")
        assert code == 0 and "Currently banned" in out, out + err
    finally:
        conn.close()
        client.servers.delete(server).wait_until_finished(120)
        key.delete()
