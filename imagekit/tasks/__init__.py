"""imagekit's operator commands, as Invoke tasks: ``invoke TASK`` in a checkout, ``imagekit TASK``
once installed. Each task parses its options and calls one function of the toolkit through
``command.run``, the one place that picks the target, reports errors (``error: …``, exit 1), prints
JSON when asked and turns what a task could not remove into warnings and exit 125. Without HCLOUD_TOKEN
every task uses the local cloud (started on demand). Text tables are rendered in imagekit/render.py.

The table of tasks, by what they act on: ``cloud`` (the local cloud, and the bench on it), ``images``
(round trip, build, verify, gc, prune), ``agents`` (provision, deprovision, pool, list, render-cloud-init),
``fleet`` (status, update, roll), ``jobs`` (run)."""

from __future__ import annotations

from invoke import Collection

from . import agents, cloud, fleet, images, jobs

namespace = Collection(*[t for module in (cloud, images, agents, fleet, jobs)
                         for t in Collection.from_module(module).tasks.values()])
