"""A job's row in ``run``'s result (``--json``: ``jobs``): what one job's pipeline reports (jobs.job), and what
the run adds that all its jobs share, its cost among it (jobs.run)."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from .transfer import Fetched


class JobSeconds(TypedDict):
    create_to_ready: float | None
    run: float | None
    teardown: float
    total: float


class JobCost(TypedDict):
    """What a job's server cost: Hetzner bills every started hour at the type's price in its location."""

    location: str | None
    price_hourly_gross: float
    billed_hours: int
    gross: float
    currency: str


class JobResult(TypedDict):
    """A job's row; the run adds what all its jobs share."""

    job_id: str
    server_name: str
    server_id: int | None
    exit_code: int | None
    timed_out: bool
    error: str | None
    kept: bool
    seconds: JobSeconds
    outputs: Fetched | None
    tailscale_devices: list[str]
    lifetime_seconds: NotRequired[float]  # taken out by the run for its cost
    location: str | None
    server_type: NotRequired[str | None]
    mode: NotRequired[str]
    image: NotRequired[int | None]
    cost: NotRequired[JobCost | None]
