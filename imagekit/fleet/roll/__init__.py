"""``roll``: agents onto a newer snapshot of their profile, batch by batch, without a gap in service.

For each agent that runs another image than the target: its code, agent id, API URL and secrets are read
from its running host over SSH; a replacement boots from the target under a temporary name (server names
are unique in a project) with the agent's name as its hostname and Tailscale hostname, labelled with the
agent's labels plus ``rolling-from=<old server id>`` and half-made; it is configured over SSH with what was
carried and waited for exactly as a new agent is. Only then is the old server deleted (with the Tailscale
devices it enrolled, not the replacement's) and the replacement renamed to the agent's name: until that
moment the old host serves, and a replacement that fails is deleted. From the deletion on, nothing deletes
the replacement. ``--in-place`` rebuilds the agent's own server instead (same id and address, an outage).

Running an interrupted roll again finishes it: a ready replacement takes over; a half-made one whose run
died is deleted and made anew; one whose old server is already gone gets the agent's name.

Rooms: ``plan`` (which agents, and what each needs), ``carry`` (what moves from the old host to the new),
``bluegreen`` (a replacement beside the old server, then the take-over), ``inplace`` (the rebuild), ``run``
(what every replacement shares, the batches). Each replacement is a provisioning agent's job with a plan of
its own (provision.plan): the same steps as a new agent, composed with the roll's."""

from .plan import RollOptions
from .run import roll_fleet

__all__ = ["RollOptions", "roll_fleet"]
