"""What a server is made from, as one value: a ``ServerSpec`` resolved once per command by ``resolve`` (its
type, the locations to try and its image looked up and checked before anything exists), then narrowed per
server (its labels, user data, keys, firewall) with ``dataclasses.replace``. The one create step
(``steps.server``) reads nothing else, so a new option (a network, IPv6 only, a placement group, the server's own
host key) is one field here, not a change in every command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from hcloud import Client
from hcloud.firewalls import BoundFirewall
from hcloud.images import BoundImage
from hcloud.locations import BoundLocation
from hcloud.networks import BoundNetwork
from hcloud.placement_groups import BoundPlacementGroup
from hcloud.server_types import BoundServerType
from hcloud.servers import ServerCreatePublicNetwork
from hcloud.ssh_keys import BoundSSHKey

from ..host import hostkey
from . import lookups
from .api import known
from .servers import SSH_VIA


@dataclass(frozen=True)
class ServerSpec:
    server_type: BoundServerType
    image: BoundImage
    locations: tuple[BoundLocation | None, ...] = (None,)  # tried in order; (None,): the API's choice
    ssh_keys: tuple[BoundSSHKey, ...] = ()
    firewalls: tuple[BoundFirewall, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    user_data: str | None = None
    networks: tuple[BoundNetwork, ...] = ()
    ssh_network: BoundNetwork | None = None  # one of networks: imagekit reaches the server there (--ssh-via private)
    ipv4: bool = True  # a public IPv4 address (Hetzner bills it); off: reached on IPv6
    ipv6: bool = True
    placement_group: BoundPlacementGroup | None = None
    host_key: hostkey.HostKey | None = None  # the server's SSH host key, made by the create step: in its user data,
    # its fingerprint in its host-key label
    login_key: str | None = None  # a public key that may log in as root, handed in the user data (a run's own key
    # for its readiness checks, when the project holds the operator's: no temporary key in the project)

    @property
    def server_labels(self) -> dict[str, str]:
        """The server's labels, its host key's fingerprint among them (and the network it is reached on)."""
        return {**self.labels, **({hostkey.LABEL: self.host_key.fingerprint} if self.host_key else {}),
                **({SSH_VIA: str(self.ssh_network.id)} if self.ssh_network is not None else {})}

    @property
    def server_user_data(self) -> str | None:
        """The server's user data (a create's, a rebuild's), its host key and login key among them."""
        assert self.host_key is not None or self.login_key is None, "a login key rides with the server's host key"
        return hostkey.with_host_key(self.user_data, self.host_key, self.login_key) if self.host_key \
            else self.user_data

    @property
    def architecture(self) -> str:
        return known(self.server_type.architecture, f"server type {self.server_type.name}'s architecture")

    def create_arguments(self, location: BoundLocation | None) -> dict[str, Any]:
        """The SDK's ``servers.create`` arguments in ``location`` (name and labels apart); options left at their
        defaults are not sent, so a create asks the API what it always asked."""
        args: dict[str, Any] = {"server_type": self.server_type, "image": self.image, "location": location,
                                "ssh_keys": list(self.ssh_keys), "user_data": self.server_user_data,
                                "firewalls": list(self.firewalls) or None}
        if self.networks:
            args["networks"] = list(self.networks)
        if not (self.ipv4 and self.ipv6):
            args["public_net"] = ServerCreatePublicNetwork(enable_ipv4=self.ipv4, enable_ipv6=self.ipv6)
        if self.placement_group is not None:
            args["placement_group"] = self.placement_group
        return args


class Narrowing(TypedDict, total=False):
    """The spec's fields besides its type, locations and image (``resolve``'s keywords)."""

    ssh_keys: tuple[BoundSSHKey, ...]
    firewalls: tuple[BoundFirewall, ...]
    labels: Mapping[str, str]
    user_data: str | None
    networks: tuple[BoundNetwork, ...]
    ssh_network: BoundNetwork | None
    ipv4: bool
    ipv6: bool
    placement_group: BoundPlacementGroup | None


def resolve(client: Client, *, server_type: str, location: str | None, image: Callable[[str], BoundImage],
            warn: Callable[[str], None] = lambda line: None, **fields: Unpack[Narrowing]) -> ServerSpec:
    """The one place a command's server type, locations and image are looked up, in that order (the type's
    request also checks the token). ``image(architecture)`` picks the image (a base image, a snapshot of the
    profile, ...) for the type's architecture; ``fields`` set the spec's other fields."""
    found = lookups.server_type(client, server_type, warn)
    locations = tuple(lookups.locations(client, location))
    return ServerSpec(server_type=found, locations=locations, image=image(known(found.architecture, f"server type "
                                                                                   f"{server_type}'s architecture")),
                      **fields)
