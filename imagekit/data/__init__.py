"""What imagekit ships besides code. ``playbooks/`` and ``cloudinit/`` sit at the top of a checkout, where an
operator editing one looks for them; a wheel carries them inside this package (setup.py maps them here), so a
plain ``pip install`` works as an editable one does. The testinfra checks, the clean script and the example
agents live here."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

TOP = ("playbooks", "cloudinit")  # at the top of a checkout, inside the package once installed from a wheel


def path(*parts: str) -> Path:
    """A file or folder of imagekit's data (a real path: Jinja2 and pytest read from disk)."""
    here = Path(str(resources.files(__name__)))
    if parts and parts[0] in TOP and not (here / parts[0]).is_dir():
        here = here.parents[1]  # a checkout, or an editable install of one: the top of the repository
    return here.joinpath(*parts)


def playbooks_dir() -> Path:
    """The playbooks imagekit ships, or an operator's own copy (IMAGEKIT_PLAYBOOKS_DIR)."""
    return Path(os.environ.get("IMAGEKIT_PLAYBOOKS_DIR") or path("playbooks"))
