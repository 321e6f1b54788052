"""``attach_to_network`` and ``detach_from_network``: a server's private network interfaces, live on a running
guest too (a new interface appears, takes its address by DHCP; a detached one vanishes), as on Hetzner."""

from __future__ import annotations

from ..engine.cloud import Cloud
from ..errors import invalid_input
from .serverlock import locked_action


def _network(cloud: Cloud, body: dict) -> dict:
    if body.get("network") is None:
        raise invalid_input("network", "network (the ID of a network) is required")
    return cloud.get("networks", body["network"], "network")


def attach_to_network(cloud: Cloud, server: dict, body: dict) -> dict:
    network = _network(cloud, body)
    entry = cloud.networks.attach(server, network, ip=body.get("ip"), alias_ips=body.get("alias_ips"),
                                  ip_range=body.get("ip_range"))
    cloud.store.save()

    def work(progress):
        machine = cloud.machine(server)
        if machine.running:
            cloud.networks.plug(server, machine, only=network["id"])
        else:
            cloud.networks.apply([network["id"]])  # its interface comes with the next boot

    def failed():
        with cloud.store.lock:
            if entry in server["private_net"]:
                server["private_net"].remove(entry)
            cloud.store.save()
        cloud.networks.unplug(server, network["id"])

    return locked_action(cloud, server, "attach_to_network", work, extra=[("network", network["id"])],
                         on_error=failed)


def detach_from_network(cloud: Cloud, server: dict, body: dict) -> dict:
    network = _network(cloud, body)
    cloud.networks.detach(server, network["id"])
    cloud.store.save()
    return locked_action(cloud, server, "detach_from_network", lambda p: cloud.networks.unplug(server, network["id"]),
                         extra=[("network", network["id"])])


ACTIONS = {"attach_to_network": attach_to_network, "detach_from_network": detach_from_network}
