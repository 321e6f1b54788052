"""The one wrapper every task goes through: settings checked, the target picked (Hetzner with a
token, else the local cloud), any error an operator can act on reported as one ``error: …`` line
with exit 1 (no traceback), and the result printed as JSON when asked. What the task made and could
not remove (its ledger of leftovers) is in the result as ``leftovers``, each also a ``warning: …``
line naming the command that removes it, and the task then exits with 125 (``EXIT_LEFTOVERS``)."""

from __future__ import annotations

import json as jsonlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

from . import leftovers, settings
from .errors import InputError

if TYPE_CHECKING:
    from .target import Target

Result = dict[str, Any]  # a task's result: printed as JSON with --json, else rendered as text (imagekit/render.py)
Prepared = TypeVar("Prepared")

TOKEN_HELP = {
    "token_env": "read the Hetzner API token from this environment variable instead of HCLOUD_TOKEN",
    "token_file": "read the Hetzner API token from this file (one line) instead of HCLOUD_TOKEN",
}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _errors() -> tuple[type[BaseException], ...]:
    """What a task reports as one `error:` line: imagekit's own errors, API, SSH, local cloud, OS errors."""
    import paramiko
    from hcloud import APIException

    from localcloud.client import LocalCloudError

    from .errors import ImagekitError

    return ImagekitError, APIException, LocalCloudError, paramiko.SSHException, OSError


@overload
def run(name: str, action: Callable[[Target], Result], *, json: bool = ..., text: Callable[[Result], str | None] = ...,
        target: Literal[True] = ..., token_env: str | None = ..., token_file: str | None = ...,
        failed: Callable[[Result], str | None] = ..., prepare: None = ...) -> Result: ...


@overload
def run(name: str, action: Callable[[Target, Prepared], Result], *, json: bool = ...,
        text: Callable[[Result], str | None] = ..., target: Literal[True] = ..., token_env: str | None = ...,
        token_file: str | None = ..., failed: Callable[[Result], str | None] = ...,
        prepare: Callable[[], Prepared]) -> Result: ...


@overload
def run(name: str, action: Callable[[None], Result], *, json: bool = ..., text: Callable[[Result], str | None] = ...,
        target: Literal[False], failed: Callable[[Result], str | None] = ...) -> Result: ...


def run(name: str, action: Callable[..., Result], *, json: bool = False,
        text: Callable[[Result], str | None] = lambda r: None, target: bool = True, token_env: str | None = None,
        token_file: str | None = None, failed: Callable[[Result], str | None] = lambda r: None,
        prepare: Callable[[], Any] | None = None) -> Result:
    """Run ``action(target)``; print its result (JSON with --json, else ``text``); one line and exit 1 on error.

    ``prepare`` parses the options before the target is picked (a bad option fails before the local cloud
    starts); then ``action(target, prepared)`` is called. ``failed`` names what went wrong in a result that is
    printed all the same (some agents failed). Leftovers: a warning line each, and exit 125 whatever else."""
    from .cloud.api import explain
    from .target import resolve

    with leftovers.ledger() as ledger:
        try:
            settings.load()  # a bad config file fails before any work
            args = (prepare(),) if prepare else ()
            result = action(resolve(say, token_env=token_env, token_file=token_file) if target else None, *args)
        except KeyboardInterrupt:
            say(f"error: {name}: interrupted")
            _leave(ledger, 130)
        except _errors() as exc:
            message = f"{name}: {explain(exc)}"
            if json:
                print(jsonlib.dumps({"error": message, "leftovers": [left.as_dict() for left in ledger.items]}))
            say(f"error: {message}")
            _leave(ledger, 1)
        if isinstance(result, dict):
            result["leftovers"] = [left.as_dict() for left in ledger.items]
        if json:
            print(jsonlib.dumps(result, default=str))
        elif (out := text(result)) is not None:
            print(out)
        if problem := failed(result):
            say(f"error: {name}: {problem}")
        _leave(ledger, 1 if problem else None)
    return result


@overload
def _leave(ledger: leftovers.Ledger, code: int) -> NoReturn: ...


@overload
def _leave(ledger: leftovers.Ledger, code: None) -> None: ...


def _leave(ledger: leftovers.Ledger, code: int | None) -> None:
    """A warning line for each leftover and exit 125 when there is one; else exit ``code`` (None: carry on)."""
    for left in ledger.items:
        say(left.warning())
    if ledger.items:
        sys.exit(leftovers.EXIT_LEFTOVERS)
    if code is not None:
        sys.exit(code)


@overload
def whole_number(option: str, value: str | int) -> int: ...


@overload
def whole_number(option: str, value: str | int | None) -> int | None: ...


def whole_number(option: str, value: str | int | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        raise InputError(f"{option} {value!r}: give a whole number") from None


@overload
def number(option: str, value: str | float, unit: str = ...) -> float: ...


@overload
def number(option: str, value: str | float | None, unit: str = ...) -> float | None: ...


def number(option: str, value: str | float | None, unit: str = "seconds") -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        raise InputError(f"{option} {value!r}: give a number of {unit}") from None
