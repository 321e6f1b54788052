"""The local cloud's records: durable on disk, bounded in size, changed under the store's lock (issue 11, item 6)."""

from __future__ import annotations

import os
import time

import pytest
import requests

from localcloud.engine import records
from localcloud.state import durable
from localcloud.state.requestlog import RequestLog
from localcloud.state.store import StateError, Store


def test_a_damaged_state_file_is_named_with_the_way_out(tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"servers": {"1": ')
    with pytest.raises(StateError) as exc:
        Store(state)
    assert str(state) in str(exc.value) and f"mv {state} {state}.damaged" in str(exc.value)
    state.write_text("[]")
    with pytest.raises(StateError):
        Store(state)


def test_saving_syncs_the_file_and_its_directory_and_keeps_it_private(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", spy)
    store = Store(tmp_path / "state.json")
    store["ssh_keys"][1] = {"id": 1, "name": "k"}
    store.save()
    assert synced == [str(tmp_path / "state.json.tmp"), str(tmp_path)]
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert Store(tmp_path / "state.json")["ssh_keys"] == {1: {"id": 1, "name": "k"}}


def test_the_request_log_keeps_the_newest_entries_and_a_growing_total(tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl", keep=3, max_file_bytes=200)
    for i in range(10):
        log.add({"path": f"/v1/{i}"})
    assert log.total == 10
    assert [e["seq"] for e in log.since(0)] == [8, 9, 10]
    assert [e["seq"] for e in log.since(9)] == [10]
    assert (tmp_path / "requests.jsonl.1").exists() and (tmp_path / "requests.jsonl").stat().st_size <= 200


def test_the_admin_request_count_grows_past_the_kept_entries(local_api):
    log = local_api.app.state.requests
    log.entries = type(log.entries)(maxlen=2)
    for _ in range(5):
        requests.get(local_api.base + "/v1/locations", headers=local_api.headers)
    body = requests.get(local_api.base + "/_admin/requests", headers=local_api.headers).json()
    assert body["total"] == 5 and [e["seq"] for e in body["requests"]] == [4, 5]


def test_action_records_are_bounded_keeping_running_ones(local_api, monkeypatch):
    monkeypatch.setattr(records, "KEEP_ACTIONS", 5)
    cloud = local_api.cloud
    running = cloud.new_action("create_server", [("server", 1)])
    for _ in range(10):
        cloud.new_action("change_protection", [("image", 1)], status="success")
    ids = sorted(cloud.store["actions"])
    assert len(ids) == 5 and running["id"] in ids and ids[-1] == running["id"] + 10


class LockedOnly(dict):
    """A table that may only be changed while its store's lock is held."""

    def __init__(self, store, *args):
        super().__init__(*args)
        self.store = store

    def _check(self):
        assert self.store.lock._is_owned(), "a record changed without the store's lock"

    def pop(self, *args):
        self._check()
        return super().pop(*args)

    def __delitem__(self, key):
        self._check()
        super().__delitem__(key)


def test_a_failed_image_creation_is_cleaned_up_under_the_stores_lock(local_api):
    h, base = local_api.headers, local_api.base
    store = local_api.cloud.store
    store.tables["images"] = LockedOnly(store)
    server = requests.post(base + "/v1/servers", headers=h, json={
        "name": "no-disk", "server_type": "cx23", "image": "debian-12", "start_after_create": False}).json()
    sid = server["server"]["id"]
    wait_action(local_api, server["action"]["id"])  # fails: the in-process cloud has no base image
    made = requests.post(f"{base}/v1/servers/{sid}/actions/create_image", headers=h, json={}).json()
    action = wait_action(local_api, made["action"]["id"])
    assert action["status"] == "error"
    assert made["image"]["id"] not in store["images"]
    assert requests.get(f"{base}/v1/images/{made['image']['id']}", headers=h).status_code == 404


def wait_action(local_api, aid: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        action = requests.get(f"{local_api.base}/v1/actions/{aid}", headers=local_api.headers).json()["action"]
        if action["status"] != "running":
            return action
        time.sleep(0.05)
    raise AssertionError(f"action {aid} still running after {timeout} s")
