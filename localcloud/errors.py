"""Error objects exactly as the Hetzner Cloud API documents them."""

from __future__ import annotations

from typing import Any

# code -> HTTP status, from the "Errors" table of the public API documentation.
STATUS = {
    "forbidden": 403,
    "unauthorized": 401,
    "invalid_input": 400,
    "json_error": 400,
    "locked": 423,
    "not_found": 404,
    "rate_limit_exceeded": 429,
    "resource_limit_exceeded": 403,
    "resource_unavailable": 403,
    "server_error": 500,
    "service_error": 503,
    "uniqueness_error": 409,
    "protected": 423,
    "maintenance": 503,
    "conflict": 409,
    "unsupported_error": 400,
    "token_readonly": 403,
    "unavailable": 503,
    "timeout": 504,
    "bad_gateway": 502,
    "resource_in_use": 409,
    "method_not_allowed": 405,
    "server_not_stopped": 409,
    "invalid_server_type": 400,
    "firewall_already_applied": 409,
    "firewall_already_removed": 409,
    "firewall_resource_not_found": 404,
    "server_already_attached": 422,
    "server_not_attached_to_network": 422,
    "networks_overlap": 422,
    "ip_not_available": 422,
    "no_subnet_available": 422,
    "already_in_placement_group": 422,
    "placement_group_member_limit_reached": 422,
    # Primary IPs (their operations' tables in Hetzner's API description)
    "primary_ip_assigned": 422,
    "primary_ip_already_assigned": 422,
    "server_has_ipv4": 422,
    "server_has_ipv6": 422,
    "must_be_unassigned": 422,
}


class APIError(Exception):
    def __init__(self, code: str, message: str, *, details: Any = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status or STATUS.get(code, 400)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid_input(field: str, message: str) -> APIError:
    return invalid_fields({field: [message]})


def invalid_fields(fields: dict[str, list[str]]) -> APIError:
    """``invalid_input`` naming each field and what is wrong with it, as the real API reports it."""
    names = ", ".join(f"'{name}'" for name in fields)
    return APIError(
        "invalid_input",
        f"invalid input in field{'s' if len(fields) > 1 else ''} {names}",
        details={"fields": [{"name": name, "messages": messages} for name, messages in fields.items()]},
    )


def not_found(kind: str, ident: Any) -> APIError:
    return APIError("not_found", f"{kind} with ID '{ident}' not found")
