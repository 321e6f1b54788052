"""Request bodies read as the API reads them: JSON, or Hetzner's ``json_error``."""

from __future__ import annotations

import json

from fastapi import Request

from ..errors import APIError


async def json_of(request: Request, empty):
    """The body as a JSON value; ``empty`` when there is none."""
    raw = await request.body()
    if not raw:
        return empty
    try:
        return json.loads(raw)
    except ValueError:
        raise APIError("json_error", "request body is not valid JSON") from None


async def body_of(request: Request) -> dict:
    """The body as a JSON object, as every API operation takes it (``{}`` when empty)."""
    data = await json_of(request, {})
    if not isinstance(data, dict):
        raise APIError("json_error", "request body must be a JSON object")
    return data
