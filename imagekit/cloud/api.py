"""Connecting to a cloud, imagekit's labels, and API errors turned into advice.

Every SDK client is made here (one HTTP timeout; the SDK's own retries for rate limits,
conflicts and gateway errors), and every API error an operator sees is worded here.
"""

from __future__ import annotations

from typing import TypeVar

import requests
from hcloud import APIException, Client

from ..errors import CloudError
from ..target import Target

T = TypeVar("T")

MANAGED = {"managed-by": "imagekit"}
HTTP_TIMEOUT = 30


def connect(target: Target) -> Client:
    return Client(token=target.token, api_endpoint=target.endpoint, application_name="imagekit",
                  timeout=HTTP_TIMEOUT)


def labels(**extra: str) -> dict[str, str]:
    return {**MANAGED, **extra}


def selector(**extra: str) -> str:
    return ",".join(f"{k}={v}" for k, v in labels(**extra).items())


def known(value: T | None, what: str) -> T:
    """A field every answer of the API carries, which hcloud's models type as optional (a model may also stand for
    a resource not loaded yet): the value, or a CloudError naming what the answer lacked."""
    if value is None:
        raise CloudError(f"the cloud's answer lacks {what}: is HCLOUD_ENDPOINT a Hetzner Cloud API?")
    return value


def explain(exc: BaseException, client: Client | None = None) -> str:
    """An API or connection error as advice; other errors as they are."""
    if isinstance(exc, requests.RequestException):
        url = getattr(exc.request, "url", None) or "the API"
        return (f"cannot reach {url.split('?')[0]} ({type(exc).__name__}): check HCLOUD_ENDPOINT and the "
                "network")
    if not isinstance(exc, APIException):
        return str(exc) or type(exc).__name__  # a bare EOFError or socket timeout has no text
    code, message = exc.code, exc.message
    if code == "unauthorized":
        return "the API token was rejected (401): check HCLOUD_TOKEN / HETZNER_API_TOKEN"
    if code == "resource_unavailable" and client is not None:
        try:
            names = ", ".join(str(loc.name) for loc in client.locations.get_all())
        except (APIException, requests.RequestException):
            names = "see `hcloud location list`"
        return f"{message}: try another location with --location (locations: {names})"
    if code == "rate_limit_exceeded":
        return f"{message}: the API rate limit was hit; wait a minute and retry"
    if code == "invalid_input" and exc.details:
        fields = "; ".join(f"{f.get('name')}: {', '.join(f.get('messages') or [])}"
                           for f in exc.details.get("fields", []))
        return f"invalid input ({fields or message})"
    if isinstance(code, int):  # not the API's JSON: a proxy or a wrong endpoint answered
        return f"the API answered HTTP {code} {message}: check HCLOUD_ENDPOINT"
    return f"{message} (API error {code})"


def requests_served(target: Target) -> int | None:
    """How many API requests the local cloud has served (its request log); None on Hetzner."""
    if not target.local:
        return None
    from localcloud import client as localcloud

    ep = localcloud.current()
    return localcloud.api_requests(ep) if ep else None
