"""imagekit passes mypy with the project's strict settings (pyproject.toml, ``imagekit.*``: every def annotated, no
bare generics, no Any returned where a type was promised), and no field or parameter of it is typed ``object``: an
SDK resource is its hcloud ``Bound*`` type, a value of unknown shape says so."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

from imagekit import settings

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "imagekit"


def test_imagekit_type_checks():
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "imagekit"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def _names_object(annotation: ast.expr | None) -> bool:
    """Whether an annotation is ``object`` or has it inside (``list[object]``, ``object | None``, ``"object"``)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # a string annotation
        return _names_object(ast.parse(annotation.value, mode="eval").body)
    return any(isinstance(node, ast.Name) and node.id == "object" for node in ast.walk(annotation))


def typed_object(source: str) -> list[str]:
    """Each parameter and field (an annotated assignment: a dataclass's or a class's attribute, a variable)
    typed ``object`` in ``source``, as ``line: name``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]:
                if _names_object(arg.annotation):
                    found.append(f"{arg.lineno}: parameter {arg.arg}")
        elif isinstance(node, ast.AnnAssign) and _names_object(node.annotation):
            found.append(f"{node.lineno}: field {ast.unparse(node.target)}")
    return found


def test_no_field_or_parameter_is_typed_object():
    found = {str(p.relative_to(REPO)): hits for p in sorted(PACKAGE.rglob("*.py"))
             if (hits := typed_object(p.read_text()))}
    assert found == {}, f"type these as what they are (an hcloud Bound* type, a TypedDict, ...): {found}"


def test_the_object_check_finds_what_it_looks_for():
    source = '''
from dataclasses import dataclass

@dataclass
class Job:
    server: object = None
    fine: int = 0

def step(s: "object", n: int, *rest: object, flag: list[object] | None = None, **more: int) -> object:
    kept: object | None = None
'''
    assert sorted(typed_object(source)) == ["10: field kept", "6: field server", "9: parameter flag",
                                            "9: parameter rest", "9: parameter s"]


def test_the_settings_said_to_have_a_default_have_one():
    """``settings.get`` of a ``Defaulted`` name is typed ``str`` (never None): each has a default."""
    defaulted = typing.get_args(settings.Defaulted)
    assert defaulted and all(settings.DEFAULTS[name] for name in defaulted)
