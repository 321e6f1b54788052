"""The warm pool: running, unassigned hosts from the newest snapshot of a profile, booted and SSH-checked, that
``provision`` claims before it creates a server cold (a claimed host is configured over SSH in about a second).

Rooms: ``members`` (what a pool host is: labels, listing, cost), ``fill`` (fill, status and drain: the ``pool``
task), ``claim`` (how one provisioning worker reserves a host on the host itself and takes it over), ``sweep``
(how fill, drain and gc delete a host only once they have reserved it as a claim does).

Hetzner bills a server whether it runs or is stopped, so only running hosts are pooled, and ``pool fill`` says what
the pool costs.
"""
