"""The house rules that keep imagekit readable, checked on its code: small rooms (no module over MAX_LINES), one
way to make a server (only the create step calls the API's create), one way to know a server's address (only
cloud/servers.py reads ``public_net``). Import loops are .importlinter's (tests/localcloud/unit/
test_import_contracts.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "imagekit"
MAX_LINES = 300
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts)


def where(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def attribute_uses(name: str) -> set[str]:
    """The modules that read an attribute ``name`` (``x.name``)."""
    return {where(p) for p in MODULES for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.Attribute) and node.attr == name}


def test_no_module_is_over_the_limit():
    long = {where(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these into rooms of one job: {long}"


def test_no_module_of_the_local_cloud_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "localcloud").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these into rooms of one job: {long}"


def test_test_modules_have_unique_basenames():
    """pytest imports test modules by basename (rootdir without packages): two of one name stop collection."""
    names: dict[str, list[str]] = {}
    for p in sorted((ROOT / "tests").rglob("test_*.py")):
        names.setdefault(p.name, []).append(str(p.relative_to(ROOT)))
    assert {n: ps for n, ps in names.items() if len(ps) > 1} == {}


def test_one_step_makes_servers():
    makers = {where(p) for p in MODULES for node in ast.walk(ast.parse(p.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "create"
              and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "servers"}
    assert makers == {"imagekit/steps/server.py"}


def test_one_helper_knows_a_servers_address():
    assert attribute_uses("public_net") == {"imagekit/cloud/servers.py"}
