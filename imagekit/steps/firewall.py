"""A profile's Hetzner firewall: its inbound rules are the profile's data (the same list as the host's UFW
rules), one labelled firewall per profile, made when missing and reused by every run after. Agents and pool
hosts of the profile sit behind it."""

from __future__ import annotations

from typing import Protocol

from hcloud import APIException, Client
from hcloud.firewalls import BoundFirewall, FirewallRule

from ..cloud import api
from ..errors import CloudError
from ..leftovers import removing
from ..profiles import Profile, Rule


def profile_firewall(client: Client, profile: Profile) -> tuple[BoundFirewall, bool]:
    """The profile's labelled Hetzner firewall (its data's inbound rules), made if missing; (firewall, made now)."""
    return labelled_firewall(client, f"imagekit-{profile.name}", rules(profile), profile_labels(profile.name))


def profile_labels(profile: str) -> dict[str, str]:
    """What tells the profile's firewall (and nothing else) apart."""
    return api.labels(role="firewall", profile=profile)


def rules(profile: Profile, ssh_from: tuple[str, ...] = ()) -> list[FirewallRule]:
    """The profile's inbound rules, open to every address; SSH's (22/tcp) only to ``ssh_from`` when given."""
    def sources(rule: Rule) -> list[str]:
        return list(ssh_from) if ssh_from and (rule.protocol, rule.port) == ("tcp", "22") else ["0.0.0.0/0", "::/0"]

    return [FirewallRule(direction="in", protocol=rule.protocol, port=rule.port, source_ips=sources(rule),
                         description=rule.description) for rule in profile.firewall]


def labelled_firewall(client: Client, name: str, rules: list[FirewallRule], labels: dict[str, str]
                      ) -> tuple[BoundFirewall, bool]:
    """The firewall with ``labels``, made (named ``name``) if missing; (firewall, made now)."""
    found = client.firewalls.get_all(label_selector=",".join(f"{k}={v}" for k, v in labels.items()))
    if found:
        return found[0], False
    try:
        return client.firewalls.create(name=name, rules=rules,  # hcloud types labels as str, documents a dict
                                       labels=labels,  # type: ignore[arg-type]
                                       ).firewall, True
    except APIException as exc:
        if exc.code != "uniqueness_error":
            raise
    firewall = client.firewalls.get_by_name(name)  # made meanwhile by a concurrent run, or by hand
    if firewall is None or (firewall.labels or {}).get("managed-by") != "imagekit":
        raise CloudError(f"a firewall named '{name}' exists but imagekit did not make it: rename or "
                         f"delete it, or label it {','.join(f'{k}={v}' for k, v in labels.items())}")
    return firewall, False


class FirewallHolder(Protocol):
    """What the firewall's step works on: a provisioning run."""

    firewall: BoundFirewall | None
    firewall_created: bool
    failed: bool

    @property
    def client(self) -> Client: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def todo(self) -> list[str]: ...


class ProfileFirewall:
    """The run's profile firewall, made or found when the run makes servers (``todo``); one this run made goes
    again when no server is left on it."""

    name = "firewall"

    def run(self, r: FirewallHolder) -> None:
        if r.todo:
            r.firewall, r.firewall_created = profile_firewall(r.client, r.profile)

    def cleanup(self, r: FirewallHolder) -> None:
        # A firewall this run made is kept for the next runs, unless no server of this run is left on it.
        fw = r.firewall
        if fw is not None and r.firewall_created and \
                not r.client.firewalls.get_by_id(api.known(fw.id, "the firewall's id")).applied_to:
            with removing("firewall", fw.id, fw.name, f"hcloud firewall delete {fw.id}"):
                r.client.firewalls.delete(fw)
