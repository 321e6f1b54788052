"""What every request goes through, in one middleware: Bearer auth, fault injection, the rate limit and
its ``RateLimit-*`` headers, and the request log (method, path, status, duration) that tests and
benchmarks count API calls from."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from ..engine.faults import Faults
from ..errors import APIError
from ..state.requestlog import RequestLog
from .handlers import error_response
from .ratelimit import RateLimiter

CallNext = Callable[[Request], Awaitable[Response]]


def new_token() -> str:
    return secrets.token_urlsafe(48)


def install(app: FastAPI, token: str, faults: Faults, limiter: RateLimiter, requests_log: RequestLog) -> None:
    expected_auth = f"Bearer {token}".encode()

    @app.middleware("http")
    async def middleware(request: Request, call_next: CallNext) -> Response:
        started = time.monotonic()
        path = request.url.path
        response = await _guarded(request, call_next, path)
        if path.startswith("/v1"):
            requests_log.add({"ts": time.time(), "method": request.method, "path": path,
                              "query": str(request.url.query), "status": response.status_code,
                              "duration_ms": round((time.monotonic() - started) * 1000, 2)})
        return response

    async def _guarded(request: Request, call_next: CallNext, path: str) -> Response:
        if path.startswith(("/v1", "/_admin")):
            if not secrets.compare_digest(request.headers.get("authorization", "").encode(), expected_auth):
                return error_response(APIError("unauthorized", "unable to authenticate"))
        if not path.startswith("/v1"):
            return await call_next(request)
        ok, remaining, reset = limiter.take()
        headers = {"RateLimit-Limit": str(limiter.limit), "RateLimit-Remaining": str(remaining),
                   "RateLimit-Reset": str(reset)}
        fault = faults.for_request(request.method, path)
        if fault and fault.get("delay"):
            await asyncio.sleep(float(fault["delay"]))
        if fault and fault.get("status") in (502, 504):
            return PlainTextResponse("<html><body><h1>bad gateway</h1></body></html>", status_code=fault["status"])
        if fault and fault.get("code"):
            response: Response = error_response(APIError(fault["code"], f"{fault['code']} (injected fault)"))
        elif not ok:
            response = error_response(APIError("rate_limit_exceeded", "limit of requests per hour reached"))
        else:
            response = await call_next(request)
        response.headers.update(headers)
        return response
