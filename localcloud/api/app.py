"""The application: Hetzner Cloud API v1 under ``/v1``, admin under ``/_admin``, one router per resource.

Route handlers carry no return annotation on purpose: FastAPI would take it for a response model and
validate every response against it.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from ..engine.cloud import Cloud
from ..state.requestlog import RequestLog
from . import (
    actions,
    admin,
    catalogue,
    firewalls,
    handlers,
    images,
    middleware,
    networks,
    placement_groups,
    pricing,
    primary_ips,
    server_actions,
    servers,
    ssh_keys,
)
from .bodylimit import BodyLimit
from .ratelimit import RateLimiter


def create_app(cloud: Cloud, token: str, *, rate_limit: int = 3600, enforce_rate_limit: bool = False,
               extra: Callable[[FastAPI], None] | None = None) -> FastAPI:
    app = FastAPI(title="imagekit local cloud (Hetzner Cloud API v1)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    limiter = RateLimiter(rate_limit, enforce_rate_limit)
    requests_log = RequestLog(cloud.layout.request_log)
    app.state.cloud, app.state.requests, app.state.limiter = cloud, requests_log, limiter
    middleware.install(app, token, cloud.faults, limiter, requests_log)
    handlers.install(app)
    # actions first: /v1/servers/actions is no server id
    for router in (actions.router(cloud), catalogue.router, images.router(cloud), ssh_keys.router(cloud),
                   servers.router(cloud), server_actions.router(cloud), firewalls.router(cloud), networks.router(cloud),
                   placement_groups.router(cloud), primary_ips.router(cloud), pricing.router, admin.router):
        app.include_router(router)
    if extra:
        extra(app)
    app.add_middleware(BodyLimit)
    return app
