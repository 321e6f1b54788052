"""``PUT /<resource>/{id}``, the update that servers, SSH keys, firewalls and images share: a new name
(unique among the resource's records) and new labels, plus the fields a resource adds of its own.

Every field is checked before any is changed, so a refused update changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..engine.cloud import Cloud
from ..errors import invalid_input
from . import labels
from .validation import HOSTNAME_RE


@dataclass(frozen=True)
class NameRule:
    """What a resource's name must be, and the message that says so."""

    valid: Callable[[object], TypeGuard[str]]
    message: str


def _non_empty(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _hostname(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(HOSTNAME_RE.match(value))


ANY_NAME = NameRule(_non_empty, "name must be a non-empty string")
HOSTNAME = NameRule(_hostname, "name must be a valid hostname (RFC 1123)")

# A resource's own field: its value in the body -> the changes to the record (or invalid_input).
Field = Callable[[Any], dict]


def update(cloud: Cloud, kind: str, ident: int, what: str, body: dict, *, name: NameRule | None = ANY_NAME,
           fields: Mapping[str, Field] | None = None) -> dict:
    """Apply the body's ``name`` (when the resource has one), its own ``fields``, then ``labels``; the record."""
    record = cloud.get(kind, ident, what)
    changes: dict[str, Any] = {}
    with cloud.store.lock:
        if name and "name" in body:
            if not name.valid(body["name"]):
                raise invalid_input("name", name.message)
            cloud.check_name_free(kind, body["name"], what, ident)
            changes["name"] = body["name"]
        for field, change in (fields or {}).items():
            if field in body:
                changes.update(change(body[field]))
        if "labels" in body:
            changes["labels"] = labels.validate(body["labels"])
        record.update(changes)
        cloud.store.save()
    return record
