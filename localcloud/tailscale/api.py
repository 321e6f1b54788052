"""The stand-in's HTTP routes, shaped like Tailscale's API v2 plus the client's enrolment calls."""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from .tailnet import TAILNET_NAME, StandInError, TailscaleStandIn


class _Route(APIRoute):
    """Render stand-in and validation errors as Tailscale's ``{"message": ...}`` objects."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except StandInError as exc:
                return JSONResponse({"message": exc.message}, status_code=exc.status)
            except RequestValidationError as exc:
                msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                return JSONResponse({"message": msgs}, status_code=400)

        return route_handler


class _DeviceCreate(BaseModel):
    reusable: bool = False
    ephemeral: bool = False
    preauthorized: bool = False
    tags: list[str] = []


class _Devices(BaseModel):
    create: _DeviceCreate = _DeviceCreate()


class _Capabilities(BaseModel):
    devices: _Devices = _Devices()


class _KeyRequest(BaseModel):
    capabilities: _Capabilities = _Capabilities()
    expirySeconds: int = 0
    description: str = ""


class _Register(BaseModel):
    authkey: str
    hostname: str
    os: str = "linux"
    client_version: str = ""
    advertise_tags: list[str] = []


class _Node(BaseModel):
    node_id: str


def router(standin: TailscaleStandIn) -> APIRouter:
    """Routes of the stand-in; mount with ``prefix="/tailscale"``."""
    r = APIRouter(route_class=_Route)

    def auth(authorization: str | None, tailnet: str | None = None) -> None:
        """The bearer token first (401), then the tailnet in the path, when there is one (404)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise StandInError(401, "missing 'Authorization: Bearer <access token>' (Tailscale stand-in)")
        standin.check_token(token.strip())
        if tailnet is not None and tailnet not in ("-", TAILNET_NAME):
            raise StandInError(404, f"tailnet {tailnet!r} not found; the stand-in has one tailnet, "
                                    f"'-' or {TAILNET_NAME!r}")

    @r.post("/api/v2/oauth/token")
    async def oauth_token(request: Request):
        # Parsed by hand: form-encoded, and FastAPI's Form() needs python-multipart.
        form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
        return standin.issue_token(form.get("client_id", ""), form.get("client_secret", ""),
                                   form.get("grant_type", ""), form.get("scope", ""))

    @r.post("/api/v2/tailnet/{tailnet}/keys")
    def create_key(tailnet: str, body: _KeyRequest, authorization: str | None = Header(None)):
        auth(authorization, tailnet)
        return standin.create_key(body.capabilities.devices.create.model_dump(),
                                  body.expirySeconds, body.description)

    @r.get("/api/v2/tailnet/{tailnet}/keys")
    def list_keys(tailnet: str, authorization: str | None = Header(None)):
        auth(authorization, tailnet)
        return {"keys": standin.list_keys()}

    @r.get("/api/v2/tailnet/{tailnet}/keys/{key_id}")
    def get_key(tailnet: str, key_id: str, authorization: str | None = Header(None)):
        auth(authorization, tailnet)
        return standin.get_key(key_id)

    @r.delete("/api/v2/tailnet/{tailnet}/keys/{key_id}")
    def delete_key(tailnet: str, key_id: str, authorization: str | None = Header(None)):
        auth(authorization, tailnet)
        standin.delete_key(key_id)
        return Response(status_code=200)

    @r.get("/api/v2/tailnet/{tailnet}/devices")
    def list_devices(tailnet: str, authorization: str | None = Header(None)):
        auth(authorization, tailnet)
        return {"devices": standin.list_devices()}

    @r.get("/api/v2/device/{device_id}")
    def get_device(device_id: str, authorization: str | None = Header(None)):
        auth(authorization)
        return standin.get_device(device_id)

    @r.delete("/api/v2/device/{device_id}")
    def delete_device(device_id: str, authorization: str | None = Header(None)):
        auth(authorization)
        standin.delete_device(device_id)
        return Response(status_code=200)

    @r.post("/standin/register")
    def register(body: _Register):
        return standin.register(body.authkey, body.hostname, body.os, body.client_version,
                                body.advertise_tags)

    @r.post("/standin/logout")
    def logout(body: _Node):
        standin.logout(body.node_id)
        return {}

    @r.post("/standin/ping")
    def ping(body: _Node):
        standin.ping(body.node_id)
        return {}

    return r
