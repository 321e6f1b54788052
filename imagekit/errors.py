"""One base for every error imagekit raises on purpose, so that every task reports any of them
the same way (``error: …`` and exit 1) and nothing an operator can act on ends in a traceback."""

from __future__ import annotations


class ImagekitError(Exception):
    """An error an operator can act on: the message says what happened and what to do."""


class InputError(ImagekitError, ValueError):
    """A bad option, setting, config file or token source; found before anything is created."""


class CloudError(ImagekitError):
    """The cloud API refused or failed; the message is worded as advice."""


class HostError(ImagekitError):
    """A host did not get where it should (SSH, cloud-init, a service, a check)."""
