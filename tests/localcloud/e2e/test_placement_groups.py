"""Placement groups on the real local cloud (issue 26, point 4): ten servers fill a spread group, the eleventh is
refused with Hetzner's error and nothing of it is created (no server, no disk), and the group lists its servers."""

from __future__ import annotations

import pytest
from hcloud import APIException
from hcloud.images import Image
from hcloud.server_types import ServerType

from localcloud.paths import layout
from tests.conftest import inventory

pytestmark = pytest.mark.e2e


def test_an_11th_server_into_a_spread_group_is_refused_and_nothing_is_created(cloud_unchanged):
    client = cloud_unchanged
    group = client.placement_groups.create(name="spread-10", type="spread").placement_group
    made = []
    try:
        for i in range(10):
            resp = client.servers.create(name=f"pg-{i}", server_type=ServerType(name="cx23"),
                                         image=Image(name="debian-12"), start_after_create=False,
                                         placement_group=group)
            made.append(resp.server)
            resp.action.wait_until_finished(60)
        before, disks = inventory(client), sorted(p.name for p in layout().disks.iterdir())
        with pytest.raises(APIException) as refused:
            client.servers.create(name="pg-10", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                  start_after_create=False, placement_group=group)
        assert refused.value.code == "placement_group_member_limit_reached"
        assert refused.value.message == f"placement group with ID {group.id} contains already 10 servers"
        assert inventory(client) == before
        assert sorted(p.name for p in layout().disks.iterdir()) == disks
        assert sorted(client.placement_groups.get_by_id(group.id).servers) == sorted(s.id for s in made)
        assert {client.servers.get_by_id(s.id).placement_group.id for s in made} == {group.id}
    finally:
        for server in made:
            client.servers.delete(server).wait_until_finished(60)
        group.delete()
