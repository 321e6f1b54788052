"""Labels and label selectors as the Hetzner Cloud API defines them (Kubernetes syntax)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ..errors import invalid_input

_NAME = r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)"
# Matched whole (fullmatch): `^...$` with match() also takes "value\n", which Hetzner refuses.
KEY_RE = re.compile(rf"(([a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?/)?{_NAME}")
VALUE_RE = re.compile(rf"({_NAME})?")

Matcher = Callable[[Mapping[str, str]], bool]


def validate(labels: object, field: str = "labels") -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise invalid_input(field, "labels must be an object of string keys and values")
    for k, v in labels.items():
        if not isinstance(k, str) or len(k) > 317 or not KEY_RE.fullmatch(k):
            raise invalid_input(field, f"label key '{k}' is invalid")
        if not isinstance(v, str) or len(v) > 63 or not VALUE_RE.fullmatch(v):
            raise invalid_input(field, f"label value '{v}' of key '{k}' is invalid")
    return dict(labels)


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` sets."""
    terms, depth, cur = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur).strip())
    return terms


_SET_RE = re.compile(r"(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)")
_CMP_RE = re.compile(r"(?P<key>[^\s!=]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^\s,]*)")


def parse_selector(selector: str) -> Matcher:
    """Compile a selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``,
    ``k notin (a,b)``, comma = AND) into a predicate over a label dict."""
    preds: list[Matcher] = []
    for term in _split_terms(selector):
        if not term:
            raise invalid_input("label_selector", "empty term in label selector")
        if m := _SET_RE.fullmatch(term):
            key, values = m["key"], {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["op"] == "in":
                preds.append(lambda lab, k=key, vs=values: k in lab and lab[k] in vs)
            else:
                preds.append(lambda lab, k=key, vs=values: k not in lab or lab[k] not in vs)
        elif m := _CMP_RE.fullmatch(term):
            key, value = m["key"], m["value"]
            if m["op"] == "!=":
                preds.append(lambda lab, k=key, v=value: lab.get(k) != v)
            else:
                preds.append(lambda lab, k=key, v=value: k in lab and lab[k] == v)
        elif term.startswith("!") and KEY_RE.fullmatch(term[1:].strip()):
            key = term[1:].strip()
            preds.append(lambda lab, k=key: k not in lab)
        elif KEY_RE.fullmatch(term):
            preds.append(lambda lab, k=term: k in lab)
        else:
            raise invalid_input("label_selector", f"invalid label selector term '{term}'")
    return lambda labels: all(p(labels) for p in preds)
