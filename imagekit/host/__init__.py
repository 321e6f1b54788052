"""Working on a host over SSH: keys, pinned host keys and connections (``keys``, ``hostkey``, ``ssh``), facts read
from it (``probe``), the idempotent playbook engine (``playbook``) and the testinfra checks (``checks``)."""
