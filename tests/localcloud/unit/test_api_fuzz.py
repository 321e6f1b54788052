"""Fuzzing every operation the local cloud serves against Hetzner's published OpenAPI description.

schemathesis draws requests from the bundled description (tests/localcloud/data/hcloud-openapi.json),
valid and invalid ones, and checks each answer: no 5xx, a documented status, a documented content
type, a body matching its documented schema (errors too: ``{"error": {...}}``). The API runs in
process without machines (see tests/localcloud/conftest.py), so a server create stops before a guest
would boot; no operation is excluded.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import fastapi.routing
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from localcloud.api import server_actions

SPEC = json.loads((Path(__file__).parents[1] / "data" / "hcloud-openapi.json").read_text())
# Random cases per operation (valid and invalid mixed) after the coverage cases; raise it for a deeper run.
EXAMPLES = int(os.environ.get("LOCALCLOUD_FUZZ_EXAMPLES", "8"))
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The actions behind the generic /actions/{command} routes.
FIREWALL_COMMANDS = {"set_rules", "apply_to_resources", "remove_from_resources"}


def routes_of(app) -> list:
    """The app's routes, included routers' too (newer FastAPI keeps an included router as one route)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten else list(app.routes)


def served_operations(app) -> set[tuple[str, str]]:
    """(METHOD, documented path) of every operation in the description that a route of ours answers."""
    served = set()
    routes = routes_of(app)
    for path, ops in SPEC["paths"].items():
        sample = "/v1" + re.sub(r"\{[^}]+\}", "1", path)
        for method in ops:
            for route in routes:
                match = getattr(route, "path_regex", None) and route.path_regex.match(sample)
                if not match or method.upper() not in getattr(route, "methods", ()):
                    continue
                command = match.groupdict().get("command")
                if command is None or command in server_actions.ACTIONS or (
                        path.startswith("/firewalls") and command in FIREWALL_COMMANDS):
                    served.add((method.upper(), path))
    return served


def test_every_served_operation_survives_fuzzing(local_api, record_property):
    served = served_operations(local_api.app)
    assert len(served) >= 40, sorted(served)  # a routing change that hides operations should show here
    schema = schemathesis.openapi.from_dict(SPEC)
    session = requests.Session()
    auth = {"Authorization": f"Bearer {local_api.token}"}  # generated cases carry an empty token
    cases, failures = 0, []

    def run(case) -> None:
        nonlocal cases
        cases += 1
        try:
            case.call_and_validate(base_url=local_api.base + "/v1", session=session, headers=auth, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # collected: one report for all operations, not the first only
            failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:600]}")

    for operation in (result.ok() for result in schema.get_all_operations()):
        if (operation.method.upper(), operation.path) not in served:
            continue
        # Boundary and wrong-type values for every parameter and body field (deterministic) ...
        for case in schema.iter_coverage_cases(operation, generation_modes=MODES,
                                               generation_config=schema.config.generation_for(operation=operation)):
            run(case)
        # ... then random valid and invalid requests.
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
        settings(max_examples=EXAMPLES, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))(given(case=strategy)(run))()
    record_property("fuzz_cases", cases)
    record_property("fuzz_failures", len(failures))
    print(f"\nfuzzed {len(served)} operations, {cases} cases, {len(failures)} failures")
    assert failures == [], "\n".join(f.splitlines()[0] for f in failures) + "\n\n" + "\n\n".join(failures[:5])
