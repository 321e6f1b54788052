# Clean the builder before its disk becomes a snapshot: every clone must get its own
# identity, and the image must carry nothing from the build (caches, logs, history, keys).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Logs and the journal.
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
rm -rf /var/log/journal/*/* /var/lib/cloud/instances/*/user-data.txt*
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
# What a host never reads: docs (copyright files stay), manual pages, translated messages (dpkg leaves
# them out of later installs: /etc/dpkg/dpkg.cfg.d/01-imagekit-nodoc), and caches that rebuild themselves.
find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find /usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian/* /usr/share/linda/*
find /usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf /var/cache/man/* /var/cache/apt-show-versions/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
# Shell history, caches and temporary files.
rm -f /root/.bash_history /home/*/.bash_history /root/.ssh/known_hosts /root/.lesshst /root/.wget-hsts
rm -rf /root/.cache /tmp/* /tmp/.[!.]* /var/tmp/* /var/tmp/.[!.]*
# Root's authorized keys (the build's temporary key, the operator's): clones get theirs from
# their own cloud-init.
rm -f /root/.ssh/authorized_keys
# Tailscale must not be enrolled, and its node key (the real client writes one on first
# start) must not be shared by every clone.
systemctl stop tailscaled 2>/dev/null || true
rm -rf /var/lib/tailscale/*
# Identity: host keys and machine-id are regenerated on every clone's first boot.
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
# cloud-init state, logs and seed, so it runs again (and only with the clone's own data).
cloud-init clean --logs --seed
# Free space: discard the free blocks, so that the snapshot (compressed on Hetzner) holds only used
# blocks (where the storage supports it: a no-op in the local cloud's containers, whose disks are files).
fstrim -v / 2>/dev/null || fstrim -av 2>/dev/null || true
sync
echo cleaned
