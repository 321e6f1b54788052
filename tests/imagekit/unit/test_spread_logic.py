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


def test_a_roll_gets_a_second_group_for_the_replacements_of_each_imagekit_group(api):
    client = cloudapi.connect(api.target)
    ours = client.placement_groups.create(name="unit-old", type="spread", labels=cloudapi.labels(
        role=spread.ROLE, profile="agent")).placement_group
    theirs = client.placement_groups.create(name="unit-own", type="spread").placement_group
    servers = []
    for n, group in enumerate((ours, ours, theirs)):
        servers.append(add_server(api.cloud, f"unit-roll-{n}", cloudapi.labels(role="agent")))
        api.cloud.store["servers"][servers[-1]]["placement_group"] = group.id
    try:
        old = [client.servers.get_by_id(s) for s in servers]
        made = spread.successors(client, old, "roll-7", lambda line: None)
        assert list(made) == [ours.id]  # the operator's own group: replacements outside it, as before
        second = made[ours.id]
        assert second.name == f"imagekit-spread-roll-7-{ours.id}" and second.type == "spread"
        assert {"role": "spread", "profile": "agent", "run": "roll-7"}.items() <= second.labels.items()
        assert spread.successors(client, old, "roll-7", lambda line: None)[ours.id].id == second.id  # run again
    finally:
        for sid in servers:
            api.cloud.store["servers"].pop(sid, None)
        for group in client.placement_groups.get_all():
            if group.name.startswith(("unit-old", "unit-own", "imagekit-spread-roll-7")):
                group.delete()
