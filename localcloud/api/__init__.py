"""The HTTP face of the local cloud: Hetzner Cloud API v1 under ``/v1``, its own controls under ``/_admin``.

``app`` builds the FastAPI application from one router per resource; ``middleware`` and ``bodylimit``
do what every request shares (auth, faults, the rate limit, the request log, a bound on bodies);
``handlers`` answers errors as Hetzner does; ``listing``, ``jsonbody``, ``update``, ``validation``,
``labels`` and ``views`` are the helpers the routers share. The work itself is the engine's (``engine/``).
"""
