"""A minimal LRO service on 127.0.0.1 for the loopback benchmark, run in its own process.

``python bench/_loopback_server.py`` binds a free port on 127.0.0.1, prints ``PORT <n>`` on a
line of its own and serves until its stdin closes (or it is terminated). It answers like an
Azure status-monitor LRO and nothing else, with prebuilt bytes, so that the server's own cost
per request is small and the same for every client measured against it:

* ``POST /start?polls=K...``: HTTP 202, an absolute ``Operation-Location`` (carrying the
  api-version, as Azure services send it) and ``{"id": ..., "status": "NotStarted"}``; the
  next K status polls complete the operation;
* ``GET /operations/op_1...``: ``Running`` (with ``percentComplete``) until the K-th poll,
  which answers ``Succeeded`` with a ``result``;
* anything else: 404.

No ``Retry-After`` is sent: every client polls again at once (lrokit with
``polling_interval=0``, azure-core with ``polling_interval=0``), so the figures are request
handling, not waiting. Operations are served one at a time (the benchmark's clients are
sequential), hence one counter. HTTP/1.1 keep-alive, TCP_NODELAY.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2024-05-01"
RESULT = {"id": "vs_1", "name": "store", "file_counts": {"completed": 3, "failed": 0}}


def _response(status: str, body: object, headers: dict[str, str] | None = None) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    lines = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


class Service:
    """The one operation's counter and the prebuilt answers."""

    def __init__(self, port: int) -> None:
        monitor = f"http://127.0.0.1:{port}/operations/op_1?api-version={API_VERSION}"
        self.start = _response(
            "202 Accepted",
            {"id": "op_1", "status": "NotStarted"},
            {"Operation-Location": monitor},
        )
        self.running = [
            _response("200 OK", {"id": "op_1", "status": "Running", "percentComplete": p})
            for p in range(100)
        ]
        self.done = _response("200 OK", {"id": "op_1", "status": "Succeeded", "result": RESULT})
        self.missing = _response("404 Not Found", {"error": {"code": "NotFound"}})
        self.polls = 1
        self.count = 0

    def answer(self, method: str, target: str) -> bytes:
        path = target.split("?", 1)[0]
        if method == "POST" and path == "/start":
            query = parse_qs(urlsplit(target).query)
            self.polls = max(1, int(query.get("polls", ["1"])[0]))
            self.count = 0
            return self.start
        if method == "GET" and path == "/operations/op_1":
            self.count += 1
            if self.count >= self.polls:
                return self.done
            return self.running[min(self.count, 99)]
        return self.missing


class Connection(asyncio.Protocol):
    """One keep-alive connection: parse request heads (and skip bodies), answer in order."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            method, target, _ = head[0].split(" ", 2)
            assert self.transport is not None
            self.transport.write(self.service.answer(method, target))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    service = Service(port)
    server = await loop.create_server(lambda: Connection(service), sock=sock)
    print(f"PORT {port}", flush=True)
    # Serve until the parent closes our stdin (or terminates us).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(serve())
