"""Connection caps and timeouts per listening address (issue 23, item 4): a peer over its cap is reset at once,
a connection that sends nothing or trickles its request is closed, and an admitted one still works."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from localcloud.api.app import create_app
from localcloud.api.listeners import Policy, policies
from tests.localcloud.conftest import TOKEN, serve

REQUEST = b"GET /v1/locations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"


@pytest.fixture
def capped(local_api):
    """The in-process API again, on a second port, with small caps and short timeouts on 127.0.0.1."""
    policy = Policy(connections=6, per_source=4, idle=1.5, request=1.0)
    server, port, thread = serve(create_app(local_api.cloud, TOKEN), {"127.0.0.1": policy})
    yield port
    server.should_exit = True
    thread.join(10)


def closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def answers(sock: socket.socket) -> bool:
    sock.settimeout(5)
    sock.sendall(REQUEST)
    return sock.recv(12).startswith(b"HTTP/1.1 200")


def test_connections_over_the_per_source_cap_are_reset_and_the_admitted_ones_work(capped):
    socks = [socket.create_connection(("127.0.0.1", capped)) for _ in range(10)]
    try:
        over = [s for s in socks[4:] if closed(s, 0.5)]
        assert len(over) == 6, "connections over the per-source cap of 4 stayed open"
        assert all(answers(s) for s in socks[:4])
        for s in socks[:4]:
            s.close()
        time.sleep(0.2)
        fresh = socket.create_connection(("127.0.0.1", capped))  # a freed place is taken again
        assert answers(fresh)
        fresh.close()
    finally:
        for s in socks:
            s.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_time(capped):
    with socket.create_connection(("127.0.0.1", capped)) as sock:
        started = time.monotonic()
        assert closed(sock, 5)
        assert 1.2 < time.monotonic() - started < 4


def test_a_request_trickled_in_byte_by_byte_is_cut_off_after_the_request_time(capped):
    """uvicorn resets its idle timer on every byte; the request time runs from the first byte to the last."""
    with socket.create_connection(("127.0.0.1", capped)) as sock:
        started = time.monotonic()
        for byte in REQUEST[:-4]:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if closed(sock, 0.2):
                break
        assert closed(sock, 2)
        assert time.monotonic() - started < 3, "a trickled request head kept its connection open"


def test_keep_alive_requests_on_one_connection_are_not_cut_by_the_request_time(capped):
    conn = http.client.HTTPConnection("127.0.0.1", capped, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/v1/locations", headers={"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            time.sleep(0.8)  # under idle, and together over the request time
        assert conn.sock is not None, "the connection was not kept alive"
    finally:
        conn.close()


def test_the_operator_and_each_guest_address_get_a_share_of_the_file_limit():
    p = policies(["10.213.7.1", "169.254.169.254"], file_limit=20000)
    assert p["127.0.0.1"].connections == 5000 and p["127.0.0.1"].idle == 620
    assert [p[a].connections for a in ("10.213.7.1", "169.254.169.254")] == [2500, 2500]
    assert p["10.213.7.1"].per_source == 64 and p["10.213.7.1"].request == 10
    assert sum(x.connections for x in p.values()) <= 20000 // 2
