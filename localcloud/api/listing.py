"""List endpoints in one place: ``label_selector``, filters, ``sort``, pagination and ``meta.pagination``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fastapi import Request

from ..errors import invalid_input, not_found
from . import labels

Filter = Callable[[dict, list[str]], bool]
BY_NAME: dict[str, Filter] = {"name": lambda i, v: i.get("name") in v}

MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25


def sort_items(items: list[dict], sort: Sequence[str], allowed: Sequence[str]) -> list[dict]:
    for spec in reversed(list(sort)):
        field, _, direction = spec.partition(":")
        if field not in allowed or direction not in ("", "asc", "desc"):
            raise invalid_input("sort", f"invalid sort value '{spec}', allowed: {', '.join(allowed)}")
        items = sorted(items, key=lambda i: (i.get(field) is None, i.get(field)), reverse=direction == "desc")
    return items


def paginate(items: list[dict], page: int | str | None, per_page: int | str | None) -> tuple[list[dict], dict]:
    try:
        page = int(page or 1)
        per_page = int(per_page or DEFAULT_PER_PAGE)
    except ValueError as exc:
        raise invalid_input("page", "page and per_page must be integers") from exc
    if page < 1:
        raise invalid_input("page", "page must be at least 1")
    if not 1 <= per_page:
        raise invalid_input("per_page", "per_page must be at least 1")
    per_page = min(per_page, MAX_PER_PAGE)
    total = len(items)
    last = max(1, -(-total // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    meta = {
        "pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last,
            "total_entries": total,
        }
    }
    return chunk, meta


def listing(request: Request, key: str, items: list[dict], *, sort_fields: Sequence[str] = ("id",),
            filters: Mapping[str, Filter] | None = None) -> dict:
    """``{key: page, "meta": ...}`` of ``items`` as the query asks: by labels, by each filter, sorted, paged."""
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


def find(items: list[dict], ident: int, what: str) -> dict:
    """The item of a listed collection (a catalogue, a kind's actions) with id ``ident``, else not_found."""
    for item in items:
        if item["id"] == ident:
            return item
    raise not_found(what, ident)
