"""Clients reuse pooled connections after pauses; the API must not close them under the client
(issue 11, item 5: `invoke bench` died with ConnectionResetError while polling)."""

from __future__ import annotations

import http.client
import statistics
import time

import requests

OLD_IDLE_TIMEOUT = 5  # uvicorn's default timeout_keep_alive, which the API used to run with


def test_an_idle_connection_is_still_open_after_a_pause_longer_than_uvicorns_default(local_api):
    """One connection, used again after the pause. (requests' pool would quietly reconnect when it sees
    the close in time; the SDK hit the race where it does not, so this uses the connection itself.)"""
    conn = http.client.HTTPConnection(local_api.base.removeprefix("http://"), timeout=10)
    try:
        for pause in (0, OLD_IDLE_TIMEOUT + 1.5):
            time.sleep(pause)
            conn.request("GET", "/v1/locations", headers=local_api.headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("connection", "").lower() != "close"
    finally:
        conn.close()


def test_requests_on_a_reused_connection_are_not_held_back_by_nagle(local_api):
    session = requests.Session()
    url = local_api.base + "/v1/locations"
    session.get(url, headers=local_api.headers)
    times = []
    for _ in range(20):
        started = time.monotonic()
        session.get(url, headers=local_api.headers)
        times.append(time.monotonic() - started)
    median = statistics.median(times)
    assert median < 0.03, f"{median * 1000:.0f} ms per request on a kept-alive connection (Nagle meets delayed ACK)"
