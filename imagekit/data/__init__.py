"""What imagekit ships besides code: playbooks, cloud-init templates, the testinfra checks, the
clean script and the example agent. Found through the package, so a plain ``pip install`` works."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(*parts: str) -> Path:
    """A file or folder of the package data (a real path: Jinja2 and pytest read from disk)."""
    return Path(str(resources.files(__name__).joinpath(*parts)))
