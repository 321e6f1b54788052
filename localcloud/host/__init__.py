"""Host plumbing, below the engine and knowing no HTTP: the bridge and the Debian mirror (``hostnet``), guests'
firewall in nftables (``hostfirewall``), each private network's namespace with its gateway and DHCP
(``privatenet``), btrfs disks and snapshots (``storage``), the system images (``baseimage``; the arm64 one,
``archimage``, whose programs run through ``binfmt``), host commands with errors that name them (``hostcmd``), the
apt repository for guests (``aptrepo``) and the Node.js packages in it (``nodejs``).
"""
