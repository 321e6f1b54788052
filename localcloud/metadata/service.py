"""The metadata service's listeners: one per running guest, each knowing only its own server.

A guest is told apart by the link its request arrives on, never by an address it could claim: its bridge port
marks its requests to 169.254.169.254:80, and the mark decides which listener they are redirected to
(``redirect``). So a listener needs no lookup by address: it answers for the one server it was opened for, read
from the records at each request (user data changed by a rebuild is what the next boot sees).

Guests are hostile: a request is one GET with a head of at most 8 KiB that must arrive within 5 s; each
listener holds at most 16 connections; answers close the connection (HTTP/1.0). All listeners share one event
loop in one thread of the API process.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable

from ..paths import HOST_ADDRESS
from . import document

log = logging.getLogger("localcloud")

HEAD_LIMIT = 8192
HEAD_TIMEOUT = 5
CONNECTIONS = 16
Lookup = Callable[[int], tuple[dict, document.Zone] | None]  # server id -> its record and zone (None once gone)


class MetadataService:
    def __init__(self, lookup: Lookup, address: str = HOST_ADDRESS):
        self.lookup = lookup
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.listeners: dict[str, asyncio.base_events.Server] = {}
        self.ports: dict[str, int] = {}
        threading.Thread(target=self.loop.run_forever, name="metadata", daemon=True).start()

    def open(self, machine: str, server_id: int) -> int:
        """Listen for ``machine`` (its server ``server_id``); returns the port its requests are redirected to."""
        self.close(machine)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, 0))
        sock.listen(CONNECTIONS)
        open_now = [0]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if open_now[0] >= CONNECTIONS:
                writer.close()
                return
            open_now[0] += 1
            try:
                await _serve(reader, writer, lambda: self.lookup(server_id))
            except (OSError, asyncio.TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError,
                    ValueError):
                pass
            finally:
                open_now[0] -= 1
                writer.close()

        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(handle, sock=sock, limit=HEAD_LIMIT), self.loop).result(10)
        self.listeners[machine] = server
        self.ports[machine] = sock.getsockname()[1]
        return self.ports[machine]

    def close(self, machine: str) -> None:
        server = self.listeners.pop(machine, None)
        self.ports.pop(machine, None)
        if server is not None:
            self.loop.call_soon_threadsafe(server.close)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 record: Callable[[], tuple[dict, document.Zone] | None]):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    path = rest.split(" ", 1)[0].split("?", 1)[0]
    found = record()
    body = document.answer(*found, path) if found is not None and method in ("GET", "HEAD") else None
    if method not in ("GET", "HEAD"):
        status, body = "405 Method Not Allowed", "method not allowed\n"
    elif body is None:
        status, body = "404 Not Found", "not found\n"
    else:
        status = "200 OK"
    data = body.encode()
    writer.write(f"HTTP/1.0 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + (data if method != "HEAD" else b""))
    await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT)
