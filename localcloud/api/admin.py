"""The local cloud's own controls under ``/_admin`` (same token as the API): fault injection, the rate
limit, the request count tests and benchmarks read, a server's CPU time, reset, health, and Node.js packages
for guests (``node_router``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..errors import invalid_input
from ..host.nodejs import NodeForArchitectures, NodePackages
from ..state.store import now
from .jsonbody import body_of, json_of

router = APIRouter(prefix="/_admin")


@router.get("/faults")
def get_faults(request: Request):
    return {"faults": request.app.state.cloud.faults.rules}


@router.put("/faults")
async def put_faults(request: Request):
    """A list of rules, or ``{"faults": [...]}``."""
    body = await json_of(request, [])
    rules = body.get("faults", []) if isinstance(body, dict) else body
    if not isinstance(rules, list):
        raise invalid_input("faults", "faults must be a list of rules")
    return {"faults": request.app.state.cloud.faults.set(rules)}


@router.delete("/faults")
def clear_faults(request: Request):
    request.app.state.cloud.faults.set([])
    return {"faults": []}


@router.put("/rate_limit")
async def put_rate_limit(request: Request):
    body = await body_of(request)
    limit, enforce = body.get("limit", 3600), body.get("enforce", False)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise invalid_input("limit", "limit must be a positive integer (requests per hour)")
    limiter = request.app.state.limiter
    limiter.configure(limit, bool(enforce))
    return {"limit": limiter.limit, "enforce": limiter.enforced}


@router.get("/requests")
def get_requests(request: Request, since: int = 0):
    log = request.app.state.requests
    return {"requests": log.since(since), "total": log.total}


@router.get("/servers/{ident}/cpu")
def server_cpu(request: Request, ident: int):
    """CPU-seconds the server's machine has spent since it last started (its cgroup's usage; ``null`` when it
    is off): what booting a clone costs, which the benchmarks report."""
    cloud = request.app.state.cloud
    server = cloud.get("servers", ident, "server")
    machine = cloud.machines.get(server["id"])
    seconds = machine.cpu_seconds() if machine is not None else None
    return {"server_id": server["id"], "cpu_seconds": None if seconds is None else round(seconds, 3)}


@router.post("/reset")
def reset(request: Request):
    request.app.state.cloud.reset()
    if hasattr(request.app.state, "on_reset"):
        request.app.state.on_reset()
    return {"reset": now()}


@router.get("/health")
def health(request: Request):
    cloud = request.app.state.cloud
    return {"ok": True, "btrfs": cloud.storage.btrfs, "servers": len(cloud.store["servers"]),
            "architectures": cloud.architectures.status()}


@router.put("/architectures/arm")
def prepare_arm(request: Request):
    """Build the arm image now, in the background, rather than at the first arm server (tests, operators)."""
    return request.app.state.cloud.architectures.prepare_arm()


def node_router(packages: NodePackages | NodeForArchitectures) -> APIRouter:
    """``PUT /_admin/node/<major>`` (the API's token): Node.js ``major`` in the repository, packaged now if
    need be. A plain def, so that a download runs in a worker thread, not on the event loop."""
    api = APIRouter(prefix="/_admin")

    @api.put("/node/{major}")
    def node_package(major: int):
        return packages.ensure(major)

    return api
