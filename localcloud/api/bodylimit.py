"""A bound on request bodies: the API runs as root and keeps bodies in memory, so a client may not
send it gigabytes. Larger bodies get a Hetzner-style error before any handler sees them."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ..errors import APIError

MAX_BODY = 1024 * 1024


class BodyLimit:
    """ASGI middleware: read the body up to ``limit`` bytes, then hand it on; past the limit answer 413."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        error = APIError("invalid_input", f"request body is larger than the limit of {self.limit} bytes", status=413)
        response = JSONResponse(error.body(), status_code=error.status, headers={"Connection": "close"})
        await response(scope, receive, send)
