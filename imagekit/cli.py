"""The ``imagekit`` command: Invoke's own ``Program`` over the task collection, as Invoke
documents for shipping a CLI, so ``imagekit TASK`` works wherever the package is installed."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from invoke import Program

from .tasks import namespace


def _version() -> str:
    try:
        return version("imagekit")
    except PackageNotFoundError:
        return "unknown"


program = Program(namespace=namespace, version=_version(), name="imagekit", binary="imagekit")


def main() -> None:
    program.run()
