"""Steps shared by every command that brings up a server: a temporary key, a server, SSH and
cloud-init. Each is a pipeline step (``imagekit.pipeline``) over a ``HostJob`` (or any state with
the same fields)."""
