"""The HTTP face of the local cloud: Hetzner Cloud API v1 under ``/v1``, admin under ``/_admin``.

Cross-cutting behaviour lives in one middleware: Bearer auth, fault injection, the
rate limit and its ``RateLimit-*`` headers, and the request log (method, path, status,
duration) that tests and benchmarks count API calls from.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import admin, catalog, firewalls, labels, server_actions, servers
from .bodylimit import BodyLimit
from .cloud import Cloud
from .errors import APIError, invalid_fields, invalid_input, not_found
from .jsonbody import body_of
from .listing import paginate, sort_items
from .ratelimit import RateLimiter
from .requestlog import RequestLog
from .validation import HOSTNAME_RE, firewall_name
from .views import firewall_json, server_json

log = logging.getLogger("localcloud")

# Our handlers' names for path parameters -> the names the API documentation gives them.
PATH_PARAMS = {"ident": "id"}


def create_app(cloud: Cloud, token: str, *, rate_limit: int = 3600, enforce_rate_limit: bool = False,
               extra: Callable[[FastAPI], None] | None = None) -> FastAPI:
    app = FastAPI(title="imagekit local cloud (Hetzner Cloud API v1)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    limiter = RateLimiter(rate_limit, enforce_rate_limit)
    expected_auth = f"Bearer {token}".encode()
    requests_log = RequestLog(cloud.layout.request_log)
    app.state.cloud, app.state.requests, app.state.limiter = cloud, requests_log, limiter

    @app.middleware("http")
    async def middleware(request: Request, call_next):
        started = time.monotonic()
        path = request.url.path
        response = await _guarded(request, call_next, path)
        if path.startswith("/v1"):
            requests_log.add({"ts": time.time(), "method": request.method, "path": path,
                              "query": str(request.url.query), "status": response.status_code,
                              "duration_ms": round((time.monotonic() - started) * 1000, 2)})
        return response

    async def _guarded(request: Request, call_next, path: str) -> Response:
        if path.startswith(("/v1", "/_admin")):
            if not secrets.compare_digest(request.headers.get("authorization", "").encode(), expected_auth):
                return _error(APIError("unauthorized", "unable to authenticate"))
        if not path.startswith("/v1"):
            return await call_next(request)
        ok, remaining, reset = limiter.take()
        headers = {"RateLimit-Limit": str(limiter.limit), "RateLimit-Remaining": str(remaining),
                   "RateLimit-Reset": str(reset)}
        fault = cloud.faults.for_request(request.method, path)
        if fault and fault.get("delay"):
            await asyncio.sleep(float(fault["delay"]))
        if fault and fault.get("status") in (502, 504):
            return PlainTextResponse("<html><body><h1>bad gateway</h1></body></html>", status_code=fault["status"])
        if fault and fault.get("code"):
            response = _error(APIError(fault["code"], f"{fault['code']} (injected fault)"))
        elif not ok:
            response = _error(APIError("rate_limit_exceeded", "limit of requests per hour reached"))
        else:
            response = await call_next(request)
        response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        """Malformed ids and query values: Hetzner's invalid_input, not the framework's own format."""
        fields: dict[str, list[str]] = {}
        for problem in exc.errors():
            name = str(problem["loc"][-1]) if problem["loc"] else "body"
            fields.setdefault(PATH_PARAMS.get(name, name), []).append(problem["msg"])
        return _error(invalid_fields(fields))

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return _error(APIError("not_found", f"no such endpoint: {request.method} {request.url.path}"))
        if exc.status_code == 405:
            return _error(APIError("method_not_allowed", "method not allowed", status=405))
        return _error(APIError("server_error", str(exc.detail), status=exc.status_code))

    def listing(request: Request, key: str, items: list[dict], *, sort_fields=("id",),
                filters: dict[str, Callable[[dict, list[str]], bool]] | None = None) -> dict:
        q = request.query_params
        if q.get("label_selector"):
            match = labels.parse_selector(q["label_selector"])
            items = [i for i in items if match(i.get("labels") or {})]
        for param, pred in (filters or {}).items():
            values = q.getlist(param)
            if values:
                items = [i for i in items if pred(i, values)]
        items = sort_items(items, q.getlist("sort"), sort_fields)
        page, meta = paginate(items, q.get("page"), q.get("per_page"))
        return {key: page, "meta": meta}

    by_name = {"name": lambda i, v: i.get("name") in v}

    # -- actions (before the resources' routes: /v1/servers/actions is no server id) -----------------
    action_sort = ("id", "command", "status", "started", "finished")

    action_filters = {"id": lambda a, v: str(a["id"]) in v, "status": lambda a, v: a["status"] in v}

    @app.get("/v1/actions")
    def list_actions(request: Request):
        return listing(request, "actions", cloud.actions_of(None), sort_fields=action_sort, filters=action_filters)

    @app.get("/v1/actions/{ident}")
    def get_action(ident: int):
        return {"action": cloud.get("actions", ident, "action")}

    for kind, plural in (("server", "servers"), ("image", "images"), ("firewall", "firewalls")):
        def _register(kind=kind, plural=plural):
            @app.get(f"/v1/{plural}/actions", name=f"list_{kind}_actions")
            def list_kind_actions(request: Request):
                return listing(request, "actions", cloud.actions_of(kind), sort_fields=action_sort,
                               filters=action_filters)

            @app.get(f"/v1/{plural}/actions/{{action_id}}", name=f"get_{kind}_action")
            def get_kind_action(action_id: int):
                return {"action": _find(cloud.actions_of(kind), action_id, "action")}

            @app.get(f"/v1/{plural}/{{ident}}/actions", name=f"list_actions_of_{kind}")
            def list_actions_of(ident: int, request: Request):
                return listing(request, "actions", cloud.actions_of(kind, ident), sort_fields=action_sort,
                               filters=action_filters)

            @app.get(f"/v1/{plural}/{{ident}}/actions/{{action_id}}", name=f"get_action_of_{kind}")
            def get_action_of(ident: int, action_id: int):
                return {"action": _find(cloud.actions_of(kind, ident), action_id, "action")}
        _register()

    # -- catalogue ---------------------------------------------------------------------------
    @app.get("/v1/locations")
    def list_locations(request: Request):
        return listing(request, "locations", catalog.LOCATIONS, sort_fields=("id", "name"), filters=by_name)

    @app.get("/v1/locations/{ident}")
    def get_location(ident: int):
        return {"location": _find(catalog.LOCATIONS, ident, "location")}

    @app.get("/v1/datacenters")
    def list_datacenters(request: Request):
        dcs = [catalog.datacenter_json(dc) for dc in catalog.DATACENTERS]
        body = listing(request, "datacenters", dcs, sort_fields=("id", "name"), filters=by_name)
        body["recommendation"] = dcs[0]["id"]
        return body

    @app.get("/v1/datacenters/{ident}")
    def get_datacenter(ident: int):
        return {"datacenter": catalog.datacenter_json(_find(catalog.DATACENTERS, ident, "datacenter"))}

    @app.get("/v1/server_types")
    def list_server_types(request: Request):
        return listing(request, "server_types", catalog.SERVER_TYPES, sort_fields=("id", "name"), filters=by_name)

    @app.get("/v1/server_types/{ident}")
    def get_server_type(ident: int):
        return {"server_type": _find(catalog.SERVER_TYPES, ident, "server type")}

    # -- images ------------------------------------------------------------------------------
    @app.get("/v1/images")
    def list_images(request: Request):
        include_deprecated = request.query_params.get("include_deprecated", "false") == "true"
        items = [i for i in cloud.images() if include_deprecated or not i["deprecated"]]
        return listing(request, "images", items, sort_fields=("id", "name", "description", "created"), filters={
            "name": lambda i, v: i["name"] in v,
            "type": lambda i, v: i["type"] in v,
            "status": lambda i, v: i["status"] in v,
            "architecture": lambda i, v: i["architecture"] in v,
            "bound_to": lambda i, v: str(i["bound_to"]) in v,
        })

    def image_by_id(ident: int) -> dict:
        return _find(cloud.images(), ident, "image")

    @app.get("/v1/images/{ident}")
    def get_image(ident: int):
        return {"image": image_by_id(ident)}

    @app.put("/v1/images/{ident}")
    async def update_image(ident: int, request: Request):
        body = await body_of(request)
        image = cloud.get("images", ident, "image")
        if "description" in body:
            if not isinstance(body["description"], str):
                raise invalid_input("description", "description must be a string")
            image["description"] = body["description"]
        if "labels" in body:
            image["labels"] = labels.validate(body["labels"])
        if body.get("type") == "snapshot":
            image.update(type="snapshot", bound_to=None)
        cloud.store.save()
        return {"image": image}

    @app.delete("/v1/images/{ident}", status_code=204)
    def delete_image(ident: int):
        cloud.delete_image(ident)
        return Response(status_code=204)

    @app.post("/v1/images/{ident}/actions/change_protection", status_code=201)
    async def image_protection(ident: int, request: Request):
        body = await body_of(request)
        image = cloud.get("images", ident, "image")
        if "delete" in body:
            if not isinstance(body["delete"], bool):
                raise invalid_input("delete", "delete must be a boolean")
            image["protection"]["delete"] = body["delete"]
        cloud.store.save()
        return {"action": cloud.new_action("change_protection", [("image", ident)], status="success")}

    # -- SSH keys ----------------------------------------------------------------------------
    @app.get("/v1/ssh_keys")
    def list_ssh_keys(request: Request):
        return listing(request, "ssh_keys", list(cloud.store["ssh_keys"].values()), sort_fields=("id", "name"),
                       filters={**by_name, "fingerprint": lambda i, v: i["fingerprint"] in v})

    @app.post("/v1/ssh_keys", status_code=201)
    async def create_ssh_key(request: Request):
        return {"ssh_key": cloud.create_ssh_key(await body_of(request))}

    @app.get("/v1/ssh_keys/{ident}")
    def get_ssh_key(ident: int):
        return {"ssh_key": cloud.get("ssh_keys", ident, "SSH key")}

    @app.put("/v1/ssh_keys/{ident}")
    async def update_ssh_key(ident: int, request: Request):
        body = await body_of(request)
        key = cloud.get("ssh_keys", ident, "SSH key")
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise invalid_input("name", "name must be a non-empty string")
            cloud.check_name_free("ssh_keys", body["name"], "SSH key", ident)
            key["name"] = body["name"]
        if "labels" in body:
            key["labels"] = labels.validate(body["labels"])
        cloud.store.save()
        return {"ssh_key": key}

    @app.delete("/v1/ssh_keys/{ident}", status_code=204)
    def delete_ssh_key(ident: int):
        cloud.get("ssh_keys", ident, "SSH key")
        with cloud.store.lock:
            cloud.store["ssh_keys"].pop(ident)
            cloud.store.save()
        return Response(status_code=204)

    # -- servers -----------------------------------------------------------------------------
    @app.get("/v1/servers")
    def list_servers(request: Request):
        items = [server_json(cloud, s) for s in list(cloud.store["servers"].values())]
        return listing(request, "servers", items, sort_fields=("id", "name", "created"),
                       filters={**by_name, "status": lambda i, v: i["status"] in v})

    @app.post("/v1/servers", status_code=201)
    async def create_server(request: Request):
        result = servers.create_server(cloud, await body_of(request))
        result["server"] = server_json(cloud, result["server"])
        return result

    @app.get("/v1/servers/{ident}")
    def get_server(ident: int):
        return {"server": server_json(cloud, cloud.get("servers", ident, "server"))}

    @app.put("/v1/servers/{ident}")
    async def update_server(ident: int, request: Request):
        body = await body_of(request)
        server = cloud.get("servers", ident, "server")
        if "name" in body:
            if not isinstance(body["name"], str) or not HOSTNAME_RE.match(body["name"]):
                raise invalid_input("name", "name must be a valid hostname (RFC 1123)")
            cloud.check_name_free("servers", body["name"], "server", ident)
            server["name"] = body["name"]
        if "labels" in body:
            server["labels"] = labels.validate(body["labels"])
        cloud.store.save()
        return {"server": server_json(cloud, server)}

    @app.delete("/v1/servers/{ident}")
    def delete_server(ident: int):
        return {"action": servers.delete_server(cloud, ident)}

    @app.post("/v1/servers/{ident}/actions/{command}", status_code=201)
    async def server_action(ident: int, command: str, request: Request):
        result = server_actions.run(cloud, ident, command, await body_of(request))
        return result if "action" in result else {"action": result}

    # -- firewalls ---------------------------------------------------------------------------
    @app.get("/v1/firewalls")
    def list_firewalls(request: Request):
        items = [firewall_json(f) for f in cloud.store["firewalls"].values()]
        return listing(request, "firewalls", items, sort_fields=("id", "name", "created"), filters=by_name)

    @app.post("/v1/firewalls", status_code=201)
    async def create_firewall(request: Request):
        result = firewalls.create_firewall(cloud, await body_of(request))
        return {"firewall": firewall_json(result["firewall"]), "actions": result["actions"]}

    @app.get("/v1/firewalls/{ident}")
    def get_firewall(ident: int):
        return {"firewall": firewall_json(cloud.get("firewalls", ident, "firewall"))}

    @app.put("/v1/firewalls/{ident}")
    async def update_firewall(ident: int, request: Request):
        body = await body_of(request)
        fw = cloud.get("firewalls", ident, "firewall")
        if "name" in body:
            cloud.check_name_free("firewalls", firewall_name(body["name"]), "firewall", ident)
            fw["name"] = body["name"]
        if "labels" in body:
            fw["labels"] = labels.validate(body["labels"])
        cloud.store.save()
        return {"firewall": firewall_json(fw)}

    @app.delete("/v1/firewalls/{ident}", status_code=204)
    def delete_firewall(ident: int):
        firewalls.delete_firewall(cloud, ident)
        return Response(status_code=204)

    @app.post("/v1/firewalls/{ident}/actions/{command}", status_code=201)
    async def firewall_action(ident: int, command: str, request: Request):
        return {"actions": firewalls.firewall_action(cloud, ident, command, await body_of(request))}

    app.include_router(admin.router)
    if extra:
        extra(app)
    app.add_middleware(BodyLimit)
    return app


def _find(items: list[dict], ident, what: str) -> dict:
    for item in items:
        if item["id"] == ident:
            return item
    raise not_found(what, ident)


def _error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def new_token() -> str:
    return secrets.token_urlsafe(48)
