"""Lookups every command shares, each with the error an operator can act on.

Written once so that build, verify, provision and run pick the same server type, location,
base image and snapshot the same way (a snapshot still being created, or one of another
architecture, is never picked).
"""

from __future__ import annotations

from collections.abc import Callable

from hcloud import APIException, Client
from hcloud.images import BoundImage
from hcloud.locations import BoundLocation
from hcloud.networks import BoundNetwork
from hcloud.server_types import BoundServerType
from hcloud.ssh_keys import BoundSSHKey

from ..errors import CloudError
from .api import known, selector


def server_type(client: Client, name: str, warn: Callable[[str], None] = lambda msg: None) -> BoundServerType:
    """The first request of most commands: it also checks the token."""
    found = client.server_types.get_by_name(name)
    if found is None:
        raise CloudError(f"server type '{name}' does not exist; choose one of: "
                         + ", ".join(str(t.name) for t in client.server_types.get_all()))
    if any(loc.deprecation for loc in found.locations or []):
        warn(f"warning: server type {found.name} is deprecated; pick a current one with --server-type")
    return found


def locations(client: Client, spec: str | None) -> list[BoundLocation | None]:
    """``--location``: one name, or names to try in order when one has no capacity (``fsn1,nbg1,hel1``);
    ``[None]`` (the API's choice) when none is given. One listing checks them all."""
    names = [name.strip() for name in (spec or "").split(",") if name.strip()]
    if not names:
        return [None]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise CloudError(f"--location names {', '.join(dupes)} twice: list each location once")
    found = {known(loc.name, "a location's name"): loc for loc in client.locations.get_all()}
    if unknown := [n for n in names if n not in found]:
        raise CloudError(f"location '{unknown[0]}' does not exist; choose from: {', '.join(found)}")
    return [found[n] for n in names]


def base_image(client: Client, name: str, architecture: str, warn: Callable[[str], None] = lambda msg: None
               ) -> BoundImage:
    found = client.images.get_by_name_and_architecture(name, architecture)
    if found is None:
        raise CloudError(f"base image '{name}' ({architecture}) does not exist; "
                         "list images with `hcloud image list --type system`")
    if found.deprecation:
        warn(f"warning: base image {name} is deprecated (unavailable after "
             f"{getattr(found.deprecation, 'unavailable_after', '?')})")
    return found


def newest_snapshot(client: Client, profile: str, architecture: str) -> BoundImage | None:
    """The newest available snapshot imagekit made of ``profile`` for ``architecture``."""
    # No status= filter: hcloud-python's get_all sends per_page in its place (status=50).
    snaps = client.images.get_all(type=["snapshot"], architecture=[architecture], sort=["created:desc"],
                                  label_selector=selector(profile=profile))
    return next((i for i in snaps if i.status == "available"), None)


def snapshot(client: Client, ident: str, profile: str, architecture: str) -> BoundImage:
    """``latest`` (the newest of the profile) or an id; it must be an available snapshot of the architecture."""
    if ident == "latest":
        found = newest_snapshot(client, profile, architecture)
        if found is None:
            raise CloudError(f"no snapshot of profile '{profile}' ({architecture}) exists: build one with "
                             "`invoke build-snapshot`")
        return found
    try:
        found = client.images.get_by_id(int(ident))
    except (ValueError, APIException):
        found = None
    if found is None or found.type != "snapshot" or found.status != "available":
        raise CloudError(f"snapshot '{ident}' not found: list snapshots with `invoke list`, build one with "
                         "`invoke build-snapshot`, or name the newest with `latest`")
    if found.architecture != architecture:
        raise CloudError(f"snapshot {found.id} is {found.architecture} but the server type is {architecture}: "
                         "pick a matching --server-type")
    return found


def own_snapshot(client: Client, ident: str, profile: str, architecture: str) -> BoundImage:
    """``snapshot()``, and one imagekit made of ``profile`` (what a roll or an incremental build may start from)."""
    found = snapshot(client, ident, profile, architecture)
    if (found.labels or {}).get("profile") != profile or (found.labels or {}).get("managed-by") != "imagekit":
        raise CloudError(f"snapshot {found.id} is not a snapshot of profile '{profile}' made by imagekit: pick one "
                         "from `invoke list`")
    return found


def image_for(client: Client, mode: str, wanted: str | None, profile: str, base: str, architecture: str,
              progress: Callable[[str], None]) -> BoundImage:
    """The image agents and jobs alike boot: ``wanted`` (a snapshot id or ``latest``) unless in fallback mode; else
    the newest snapshot of the profile; else, in ``auto`` mode, the stock ``base`` image for a full install (said
    on ``progress``). ``mode_of`` names the mode it means."""
    if mode != "fallback" and wanted:
        return snapshot(client, wanted, profile, architecture)
    if mode != "fallback":
        if found := newest_snapshot(client, profile, architecture):
            return found
        if mode == "snapshot":
            raise CloudError(f"no snapshot of profile '{profile}' ({architecture}) exists: build one with "
                             "`invoke build-snapshot`, or use --mode fallback")
        progress(f"no snapshot of profile '{profile}' ({architecture}) exists: falling back to a full install "
                 f"on {base} (minutes, not seconds; `invoke build-snapshot` makes it fast)")
    return base_image(client, base, architecture, progress)


def mode_of(image: BoundImage) -> str:
    """``snapshot`` for a snapshot (the fast path), ``fallback`` for a stock image (a full install)."""
    return "snapshot" if image.type == "snapshot" else "fallback"


def ssh_key(client: Client, ident: str) -> BoundSSHKey:
    """An SSH key of the project by id or name (HETZNER_SSH_KEY_ID)."""
    try:
        found = client.ssh_keys.get_by_id(int(ident)) if ident.isdigit() else client.ssh_keys.get_by_name(ident)
    except APIException as exc:
        if exc.code != "not_found":
            raise
        found = None
    if found is None:
        raise CloudError(f"HETZNER_SSH_KEY_ID {ident!r}: no such SSH key in this project; "
                         "list keys with `hcloud ssh-key list`")
    return found


def networks(client: Client, idents: tuple[str, ...]) -> tuple[BoundNetwork, ...]:
    """``--network``: existing networks by name or id, in the order given; one listing finds them all."""
    if not idents:
        return ()
    found = client.networks.get_all()
    by_id = {str(n.id): n for n in found}
    by_name = {n.name: n for n in found}
    picked: list[BoundNetwork] = []
    for ident in idents:
        network = by_id.get(ident) or by_name.get(ident)
        if network is None:
            names = ", ".join(f"{n.name} ({n.id})" for n in found) or "none exist"
            raise CloudError(f"--network {ident!r}: no such network in this project (networks: {names}); create it "
                             "first (`hcloud network create` and `hcloud network add-subnet`) or name an existing one")
        if network.id in {n.id for n in picked}:
            raise CloudError(f"--network names network {network.name} ({network.id}) twice: list each once")
        picked.append(network)
    return tuple(picked)
