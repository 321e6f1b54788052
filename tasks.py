"""imagekit's Invoke tasks live in the package (``imagekit/tasks.py``), so that the installed
``imagekit`` command ships the same ones; ``invoke TASK`` in a checkout finds them here."""

from imagekit.tasks import namespace  # noqa: F401
