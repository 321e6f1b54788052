"""``provision``: agent ids → ready agent hosts, from the newest snapshot or by full install.

Rooms: ``options`` (the options and their own checks), ``plan`` (every check before anything exists, and
what the run is made of, unchanged after), ``state`` (what the run finds and makes), ``run`` (the run's steps:
temporary key, firewall, the agents in parallel), ``agent`` (one agent's steps), ``halfmade``
(the label a server carries until its agent is ready; gc uses it too), ``userdata`` (the cloud-init
user data, also printed by ``render-cloud-init``), ``spread`` (``--spread``'s placement group, deleted with the
last of its agents).
"""

from .options import ProvisionOptions
from .run import provision
from .userdata import render_for_operator

__all__ = ["ProvisionOptions", "provision", "render_for_operator"]
