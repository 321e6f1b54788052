"""provision's inputs: every check that can fail before anything is created, filling in the run's plan."""

from __future__ import annotations

from .. import agentid, profiles, secretfile, settings, tailnet
from ..agentconf import agents_api_url, bundle
from ..cloud import api, lookups
from ..errors import InputError
from ..pool import claim, members
from ..steps.operator import matching, own_key
from . import halfmade, userdata
from .options import check_options
from .state import Run


def check_inputs(r: Run) -> None:
    """Everything that can be wrong is found here, before anything is created; fills in the run's plan."""
    o, c = r.options, r.client
    check_options(o)
    r.profile = profiles.load(o.profile)
    r.server_type = lookups.server_type(c, o.server_type)  # the first request also checks the token
    r.locations = lookups.locations(c, o.location)
    r.mode, r.image = lookups.image_for(c, o.mode, settings.choose(o.snapshot, "HETZNER_SNAPSHOT_ID"), o.profile,
                                        o.base_image, r.server_type.architecture, r.progress)
    if r.mode == "fallback" and not o.wait:
        raise InputError("fallback mode installs over SSH and cannot skip waiting: drop --no-wait")
    r.secrets = secretfile.load(o.secrets_file)
    if r.secrets and not o.wait:
        raise InputError("--secrets-file: the secrets go to the hosts over SSH once they boot, so provision must "
                         "wait: drop --no-wait")
    ident = o.operator_key or settings.get("HETZNER_SSH_KEY_ID")
    r.operator_key = lookups.ssh_key(c, ident) if ident else None
    if o.keypair is not None:
        r.keypair = matching(o.keypair, r.operator_key, "the private key given")
    elif path := settings.get("SSH_PRIVATE_KEY_PATH"):
        r.keypair = own_key(path, r.operator_key)
    if not o.wait and r.operator_key is None:  # without any key Hetzner would give the server a root password
        raise InputError("--no-wait puts no key of imagekit's on the servers: set HETZNER_SSH_KEY_ID to your key "
                         "(a server without an SSH key gets a root password), or let provision wait")
    r.api_url = agents_api_url(o.api_url, r.target.local)
    r.bundle = bundle(o.agent_bundle, r.profile)
    if r.enrols:
        creds = tailnet.credentials(r.target)
        r.tags = creds.tags
        r.tailnet = tailnet.Tailnet(creds)
        r.tailnet.authenticate()
    find_pool(r)
    names = {agentid.server_name(a): a for a in o.agent_ids}
    found = {s.name: s for s in c.servers.get_all(label_selector=api.selector(role="agent")) if s.name in names}
    r.replace = {name: s for name, s in found.items() if halfmade.abandoned(s)}
    r.existing = {name: s for name, s in found.items() if name not in r.replace}
    r.todo = [a for name, a in names.items() if name not in r.existing]
    for agent in r.todo:
        userdata.render(r.config(agent, userdata.PLACEHOLDER_KEY), r.bundle)


def find_pool(r: Run) -> None:
    """The pool hosts this run may claim: ready, of the profile, from the run's snapshot, reached by the operator's
    key, whose private half (SSH_PRIVATE_KEY_PATH) the run holds; listed only when they can be used."""
    o = r.options
    if o.refill and (r.keypair is None or r.mode != "snapshot" or not o.wait):
        raise InputError("--refill makes pool hosts from the snapshot, reached with your own key: set "
                         "SSH_PRIVATE_KEY_PATH and HETZNER_SSH_KEY_ID, and use snapshot mode without --no-wait")
    if r.keypair is None or r.mode != "snapshot" or not o.wait or not (o.pool or o.refill):
        return
    found = members.members(r.client, o.profile)
    r.pool_size = len(found)
    if o.pool:
        r.pool = claim.Candidates([s for s in found if members.claimable_host(s, r.image.id, r.operator_key.id)])
