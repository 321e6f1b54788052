"""Guests seen from the host: a server's machine (systemd-nspawn: start, power, cgroups, its seed) and writing
into a guest's file system without following a path the guest controls.

The programs that run *inside* guests are data, in ``localcloud/guest/``.
"""
