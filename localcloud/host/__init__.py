"""Host plumbing, below the engine and knowing no HTTP: the bridge and the Debian mirror (``hostnet``), guests'
firewall in nftables (``hostfirewall``), btrfs disks and snapshots (``storage``), the system image
(``baseimage``), host commands with errors that name them (``hostcmd``), the apt repository for guests
(``aptrepo``) and the Node.js packages in it (``nodejs``).
"""
