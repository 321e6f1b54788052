"""Run ids: every resource a run makes carries its id (label ``run``), so that ``gc --run ID`` can sweep what one
run left whatever its lease (a cancelled workflow). A run makes its own id unless given one (``--run-id``: a
workflow passes ``<run id>-<attempt>``); an id given must be a label value as Hetzner accepts it."""

from __future__ import annotations

import re
import secrets
import time

from .errors import InputError

LABEL = "run"
_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")


def new() -> str:
    """A fresh id: the time it was made (sortable, readable) and six random hex digits."""
    return time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)


def given(value: str | None) -> str:
    """``--run-id`` checked as a label value, or a fresh id when none was given."""
    if value is None or value == "":
        return new()
    if not _VALUE.fullmatch(value):
        raise InputError(f"--run-id {value!r}: give 1 to 63 letters, digits, '-', '_' or '.', starting and ending "
                         "with a letter or digit (it labels everything the run makes)")
    return value
