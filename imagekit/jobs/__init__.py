"""One-shot jobs: a fresh host from the snapshot per job, inputs in, outputs out, always torn down."""

from .options import JobOptions
from .run import run_jobs

__all__ = ["JobOptions", "run_jobs"]
