"""Working on a host over SSH: keys and connections (``keys``, ``ssh``), facts read from it
(``probe``), the idempotent playbook engine (``playbook``) and the testinfra checks (``checks``)."""
