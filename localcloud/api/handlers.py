"""Every error answered as the Hetzner Cloud API answers it: ``{"error": {code, message, details}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import APIError, invalid_fields

# Our handlers' names for path parameters -> the names the API documentation gives them.
PATH_PARAMS = {"ident": "id"}


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def install(app: FastAPI) -> None:
    """Our own errors, the framework's validation errors and its 404/405 in Hetzner's format."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """Malformed ids and query values: Hetzner's invalid_input, not the framework's own format."""
        fields: dict[str, list[str]] = {}
        for problem in exc.errors():
            name = str(problem["loc"][-1]) if problem["loc"] else "body"
            fields.setdefault(PATH_PARAMS.get(name, name), []).append(problem["msg"])
        return error_response(invalid_fields(fields))

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(APIError("not_found", f"no such endpoint: {request.method} {request.url.path}"))
        if exc.status_code == 405:
            return error_response(APIError("method_not_allowed", "method not allowed", status=405))
        return error_response(APIError("server_error", str(exc.detail), status=exc.status_code))
