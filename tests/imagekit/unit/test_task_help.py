"""Every Invoke task explains itself: a docstring (its `--help` and `invoke --list` line) and help
for every option, so `invoke --help TASK` is an operator's manual."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from invoke import Collection
from invoke.loader import FilesystemLoader

ROOT = Path(__file__).resolve().parents[3]
module, _ = FilesystemLoader(start=str(ROOT)).load("tasks")
TASKS = Collection.from_module(module).tasks


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_has_docstring_and_help_for_every_option(name):
    task = TASKS[name]
    assert (task.__doc__ or "").strip(), f"{name} has no docstring"
    # Invoke strips a trailing underscore (`from_` is `--from`), and so do its help keys.
    options = [p.rstrip("_") for p in list(inspect.signature(task.body).parameters)[1:]]
    missing = [o for o in options if not (task.help or {}).get(o)]
    assert missing == [], f"{name}: options without help: {missing}"
