"""The local cloud's stand-in for Tailscale: control API, client package, apt repository.

Tailscale's real service cannot be reached from here, so the local cloud serves a small
stand-in that follows the shapes of Tailscale's public API v2 (OAuth client credentials,
auth keys, devices) and ships a ``tailscale`` Debian package whose client enrols against
it. The stand-in creates no WireGuard tunnel; it only records enrolment, which is what
provisioning and its tests need to check. It is named as a stand-in everywhere it shows.

``tailnet`` holds the state and its rules, ``api`` serves it over HTTP, ``package`` builds
the client package (its programs are files under ``localcloud/guest/tailscale/``).
"""
