"""The HTTP face of the local cloud: Hetzner Cloud API v1 under ``/v1``, admin under ``/_admin``.

Cross-cutting behaviour lives in one middleware: Bearer auth, fault injection, the
rate limit and its ``RateLimit-*`` headers, and the request log (method, path, status,
duration) that tests and benchmarks count API calls from.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import catalog, labels
from .cloud import HOSTNAME_RE, Cloud
from .errors import APIError, invalid_input, not_found
from .listing import paginate, sort_items
from .store import now

log = logging.getLogger("localcloud")


class RateLimiter:
    """Hetzner's model: a bucket of ``limit`` requests per hour, refilled one per second-ish."""

    def __init__(self, limit: int, enforced: bool):
        self.lock = threading.Lock()
        self.configure(limit, enforced)

    def configure(self, limit: int, enforced: bool) -> None:
        with self.lock:
            self.limit, self.enforced = max(1, limit), enforced
            self.tokens = float(self.limit)
            self.stamp = time.monotonic()

    def take(self) -> tuple[bool, int, int]:
        with self.lock:
            t = time.monotonic()
            self.tokens = min(self.limit, self.tokens + (t - self.stamp) * self.limit / 3600)
            self.stamp = t
            ok = self.tokens >= 1 or not self.enforced
            if self.tokens >= 1:
                self.tokens -= 1
            remaining = int(self.tokens)
            reset = int(time.time() + (self.limit - self.tokens) * 3600 / self.limit)
            return ok, remaining, reset


class RequestLog:
    def __init__(self, path):
        self.path = path
        self.entries: list[dict] = []
        self.lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self.lock:
            entry["seq"] = len(self.entries) + 1
            self.entries.append(entry)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")


def create_app(cloud: Cloud, token: str, *, rate_limit: int = 3600, enforce_rate_limit: bool = False,
               extra: Callable[[FastAPI], None] | None = None) -> FastAPI:
    app = FastAPI(title="imagekit local cloud (Hetzner Cloud API v1)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    limiter = RateLimiter(rate_limit, enforce_rate_limit)
    requests_log = RequestLog(cloud.layout.request_log)
    app.state.cloud, app.state.requests = cloud, requests_log

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
            if request.headers.get("authorization", "") != f"Bearer {token}":
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

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise APIError("json_error", "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise APIError("json_error", "request body must be a JSON object")
        return data

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
            if any(k["name"] == body["name"] and k["id"] != ident for k in cloud.store["ssh_keys"].values()):
                raise APIError("uniqueness_error", "SSH key with the same name already exists")
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
        result = cloud.create_server(await body_of(request))
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
            server["name"] = body["name"]
        if "labels" in body:
            server["labels"] = labels.validate(body["labels"])
        cloud.store.save()
        return {"server": server_json(cloud, server)}

    @app.delete("/v1/servers/{ident}")
    def delete_server(ident: int):
        return {"action": cloud.delete_server(ident)}

    @app.post("/v1/servers/{ident}/actions/{command}", status_code=201)
    async def server_action(ident: int, command: str, request: Request):
        result = cloud.server_action(ident, command, await body_of(request))
        return result if "action" in result else {"action": result}

    # -- firewalls ---------------------------------------------------------------------------
    @app.get("/v1/firewalls")
    def list_firewalls(request: Request):
        items = [firewall_json(f) for f in cloud.store["firewalls"].values()]
        return listing(request, "firewalls", items, sort_fields=("id", "name", "created"), filters=by_name)

    @app.post("/v1/firewalls", status_code=201)
    async def create_firewall(request: Request):
        result = cloud.create_firewall(await body_of(request))
        return {"firewall": firewall_json(result["firewall"]), "actions": result["actions"]}

    @app.get("/v1/firewalls/{ident}")
    def get_firewall(ident: int):
        return {"firewall": firewall_json(cloud.get("firewalls", ident, "firewall"))}

    @app.put("/v1/firewalls/{ident}")
    async def update_firewall(ident: int, request: Request):
        body = await body_of(request)
        fw = cloud.get("firewalls", ident, "firewall")
        if "name" in body:
            fw["name"] = body["name"]
        if "labels" in body:
            fw["labels"] = labels.validate(body["labels"])
        cloud.store.save()
        return {"firewall": firewall_json(fw)}

    @app.delete("/v1/firewalls/{ident}", status_code=204)
    def delete_firewall(ident: int):
        cloud.delete_firewall(ident)
        return Response(status_code=204)

    @app.post("/v1/firewalls/{ident}/actions/{command}", status_code=201)
    async def firewall_action(ident: int, command: str, request: Request):
        return {"actions": cloud.firewall_action(ident, command, await body_of(request))}

    # -- actions -----------------------------------------------------------------------------
    action_sort = ("id", "command", "status", "started", "finished")

    def actions_of(kind: str | None, ident: int | None = None) -> list[dict]:
        return [a for a in list(cloud.store["actions"].values())
                if kind is None or any(r["type"] == kind and (ident is None or r["id"] == ident)
                                       for r in a["resources"])]

    action_filters = {"id": lambda a, v: str(a["id"]) in v, "status": lambda a, v: a["status"] in v}

    @app.get("/v1/actions")
    def list_actions(request: Request):
        return listing(request, "actions", actions_of(None), sort_fields=action_sort, filters=action_filters)

    @app.get("/v1/actions/{ident}")
    def get_action(ident: int):
        return {"action": cloud.get("actions", ident, "action")}

    for kind, plural in (("server", "servers"), ("image", "images"), ("firewall", "firewalls")):
        def _register(kind=kind, plural=plural):
            @app.get(f"/v1/{plural}/actions", name=f"list_{kind}_actions")
            def list_kind_actions(request: Request):
                return listing(request, "actions", actions_of(kind), sort_fields=action_sort, filters=action_filters)

            @app.get(f"/v1/{plural}/actions/{{action_id}}", name=f"get_{kind}_action")
            def get_kind_action(action_id: int):
                return {"action": _find(actions_of(kind), action_id, "action")}

            @app.get(f"/v1/{plural}/{{ident}}/actions", name=f"list_actions_of_{kind}")
            def list_actions_of(ident: int, request: Request):
                return listing(request, "actions", actions_of(kind, ident), sort_fields=action_sort,
                               filters=action_filters)

            @app.get(f"/v1/{plural}/{{ident}}/actions/{{action_id}}", name=f"get_action_of_{kind}")
            def get_action_of(ident: int, action_id: int):
                return {"action": _find(actions_of(kind, ident), action_id, "action")}
        _register()

    # -- admin (outside /v1; the same token) -------------------------------------------------
    @app.get("/_admin/faults")
    def get_faults():
        return {"faults": cloud.faults.rules}

    @app.put("/_admin/faults")
    async def put_faults(request: Request):
        raw = json.loads(await request.body() or b"[]")
        return {"faults": cloud.faults.set(raw.get("faults", []) if isinstance(raw, dict) else raw)}

    @app.delete("/_admin/faults")
    def clear_faults():
        cloud.faults.set([])
        return {"faults": []}

    @app.put("/_admin/rate_limit")
    async def put_rate_limit(request: Request):
        body = await body_of(request)
        limiter.configure(int(body.get("limit", 3600)), bool(body.get("enforce", False)))
        return {"limit": limiter.limit, "enforce": limiter.enforced}

    @app.get("/_admin/requests")
    def get_requests(since: int = 0):
        return {"requests": [e for e in requests_log.entries if e["seq"] > since], "total": len(requests_log.entries)}

    @app.post("/_admin/reset")
    def reset():
        cloud.reset()
        if hasattr(app.state, "on_reset"):
            app.state.on_reset()
        return {"reset": now()}

    @app.get("/_admin/health")
    def health():
        return {"ok": True, "btrfs": cloud.storage.btrfs, "servers": len(cloud.store["servers"])}

    if extra:
        extra(app)
    return app


def _find(items: list[dict], ident, what: str) -> dict:
    for item in items:
        if item["id"] == ident:
            return item
    raise not_found(what, ident)


def _error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def server_json(cloud: Cloud, s: dict) -> dict:
    stype = next(t for t in catalog.SERVER_TYPES if t["name"] == s["server_type"])
    location = catalog.LOCATION_BY_NAME[s["location"]]
    return {
        "id": s["id"], "name": s["name"], "status": s["status"], "created": s["created"],
        "public_net": {
            "ipv4": {"id": s["id"], "ip": s["address"], "blocked": False, "dns_ptr": f"static.{s['address']}.local"},
            "ipv6": None, "floating_ips": [],
            "firewalls": [{"id": f, "status": "applied"} for f in s["firewalls"]],
        },
        "private_net": [], "server_type": stype,
        "datacenter": catalog.datacenter_json(catalog.DATACENTER_BY_LOCATION[s["location"]]),
        "location": location, "image": cloud.get_image_of(s), "iso": None, "rescue_enabled": False,
        "locked": s["locked"], "backup_window": None, "outgoing_traffic": 0, "ingoing_traffic": 0,
        "included_traffic": 21990232555520, "protection": s["protection"], "labels": s["labels"],
        "volumes": [], "load_balancers": [], "primary_disk_size": stype["disk"], "placement_group": None,
    }


def firewall_json(fw: dict) -> dict:
    return {**fw, "applied_to": [{"type": "server", "server": {"id": sid}} for sid in fw["applied_to"]]}


def new_token() -> str:
    return secrets.token_urlsafe(48)
