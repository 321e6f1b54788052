"""``provision --spread`` without machines: more agents than a spread group holds fail before anything exists,
and a group imagekit made goes with the last of its servers (records in the in-process API; nothing boots).
Agents in a real group, deprovisioned with it: tests/imagekit/e2e/test_bill.py."""

from __future__ import annotations

import pytest
from api_records import add_server

from imagekit.cloud import api as cloudapi
from imagekit.errors import InputError
from imagekit.provision import ProvisionOptions, provision, spread


def test_more_agents_than_a_group_holds_fail_naming_the_limit(api, clean_settings):
    ids = [f"wide-{i}" for i in range(11)]
    spread.check(ProvisionOptions(agent_ids=ids[:10], spread=True))
    spread.check(ProvisionOptions(agent_ids=ids))  # without --spread: no limit
    before = {kind: set(api.cloud.store[kind]) for kind in ("servers", "placement_groups", "ssh_keys", "firewalls")}
    with pytest.raises(InputError, match="--spread: a spread placement group holds at most 10 servers .* this run "
                                         "has 11 agents"):
        provision(api.target, ProvisionOptions(agent_ids=ids, spread=True), lambda line: None)
    assert {kind: set(api.cloud.store[kind]) for kind in before} == before


def test_a_group_goes_with_its_last_server_and_only_an_imagekit_spread_group(api):
    client = cloudapi.connect(api.target)
    ours = client.placement_groups.create(name="unit-spread", type="spread",
                                          labels=cloudapi.labels(role=spread.ROLE)).placement_group
    theirs = client.placement_groups.create(name="unit-theirs", type="spread").placement_group
    servers = []
    for n, group in enumerate((ours, ours, theirs)):
        servers.append(add_server(api.cloud, f"unit-spread-{n}", cloudapi.labels(role="agent")))
        api.cloud.store["servers"][servers[-1]]["placement_group"] = group.id
    lines: list[str] = []
    try:
        assert spread.groups_of(client.servers.get_by_id(s) for s in servers) == [ours.id, ours.id, theirs.id]
        api.cloud.store["servers"].pop(servers[0])
        assert spread.drop_empty(client, [ours.id, theirs.id, None], lines.append) == []  # one server left in it
        api.cloud.store["servers"].pop(servers[1])
        api.cloud.store["servers"].pop(servers[2])
        assert spread.drop_empty(client, [ours.id, theirs.id, ours.id], lines.append) == [ours.id]
        assert lines == [f"deleting placement group {ours.id} (unit-spread): the last of its agents is gone"]
        assert {g.id for g in client.placement_groups.get_all()} >= {theirs.id}  # not imagekit's: kept
        assert spread.drop_empty(client, [ours.id], lines.append) == []  # gone already: fine
    finally:
        for sid in servers:
            api.cloud.store["servers"].pop(sid, None)
        for group in client.placement_groups.get_all():
            if group.name in ("unit-spread", "unit-theirs"):
                group.delete()


def test_a_roll_gets_a_successor_for_each_of_imagekits_groups_and_gc_takes_empty_ones_left_behind(api):
    client = cloudapi.connect(api.target)
    ours = client.placement_groups.create(name="unit-old", type="spread",
                                          labels=cloudapi.labels(role=spread.ROLE, run="r1")).placement_group
    theirs = client.placement_groups.create(name="unit-theirs", type="spread").placement_group
    servers = []
    for n, group in enumerate((ours, theirs, None)):
        servers.append(add_server(api.cloud, f"unit-roll-{n}", cloudapi.labels(role="agent")))
        api.cloud.store["servers"][servers[-1]]["placement_group"] = group.id if group else None
    lines: list[str] = []
    try:
        olds = [client.servers.get_by_id(s) for s in servers]
        made = spread.successors(client, olds, "r2", "agent", lines.append)
        assert list(made) == [ours.id]  # the operator's group is left alone, a server in none gets none
        new = made[ours.id]
        assert new.name == f"imagekit-spread-r2-{ours.id}" and new.type == "spread"
        assert new.labels == cloudapi.labels(role=spread.ROLE, profile="agent", run="r2")
        assert spread.successors(client, olds, "r2", "agent", lines.append)[ours.id].id == new.id  # run again
        # gc: an empty group goes once it is older than ABANDONED (+ grace), or at once with --run
        assert spread.abandoned(client, 0, None, lines.append) == []
        api.cloud.store["placement_groups"][new.id]["created"] = "2026-01-01T00:00:00+00:00"
        assert spread.abandoned(client, 0, None, lines.append) == [new.id]
        api.cloud.store["servers"].pop(servers[0])
        assert spread.abandoned(client, 0, "r1", lines.append) == [ours.id]
        assert {g.id for g in client.placement_groups.get_all()} >= {theirs.id}
    finally:
        for sid in servers:
            api.cloud.store["servers"].pop(sid, None)
        for group in client.placement_groups.get_all():
            if group.name.startswith(("unit-", "imagekit-spread-r2-")):
                group.delete()
