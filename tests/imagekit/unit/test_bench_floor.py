"""The bench's bare build is a build job like build-snapshot's: its builder has the build's server type (an empty
one failed the whole bench at its floor build once builds became per architecture)."""

from __future__ import annotations

import importlib

floor = importlib.import_module("imagekit.bench.floor")  # the module (the package exports a function of its name)


def test_the_bare_build_names_its_builders_server_type(monkeypatch):
    jobs = []
    monkeypatch.setattr(floor, "check_inputs", jobs.append)
    monkeypatch.setattr(floor, "run_steps", lambda steps, job, progress: {"boot": 1.0})
    assert floor.floor_build(target=None, client=None)["seconds"] == 1.0  # type: ignore[arg-type]
    [job] = jobs
    assert job.server_type == job.options.server_type == "cx23"
