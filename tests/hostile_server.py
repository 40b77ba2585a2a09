"""A hostile HTTP server on 127.0.0.1 for the tests of tests/test_hostile_servers.py.

Each path is a behaviour: a good start answer pointing at a hostile monitor, headers or a
body trickled one byte at a time, an endless body, a gzip bomb, a huge body, URLs holding a
secret. The server runs in threads of its own (one per connection), binds a free port on
127.0.0.1, and every handler ends within ``MAX_SECONDS`` or as soon as the client goes away,
so no test can hang on it; ``close()`` stops the accept loop and joins every thread.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

#: No handler runs longer than this (seconds), whatever the client does.
MAX_SECONDS = 6.0
#: The interval between trickled bytes (seconds).
TRICKLE = 0.2
SECRET = "TOPSECRET"


@functools.lru_cache(maxsize=2)
def _bomb(decoded_bytes: int) -> bytes:
    """A gzip body that decodes to ``decoded_bytes`` of spaces inside a JSON string."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        out.write(b'{"status": "Running", "pad": "')
        block = b" " * (1 << 20)
        for _ in range(decoded_bytes >> 20):
            out.write(block)
        out.write(b'"}')
    return buffer.getvalue()


class HostileServer:
    """Answers ``POST /start/<behaviour>`` with a 202 whose monitor is ``/mon/<behaviour>``;
    ``GET /mon/<behaviour>`` misbehaves as named. ``created`` counts starts per path."""

    def __init__(self, *, bomb_bytes: int = 256 << 20, huge_bytes: int = 256 << 20) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}/"
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.created: Counter[str] = Counter()
        self._creations: dict[str, set[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self._bomb_bytes = bomb_bytes  # built when first asked for (seconds of gzip)
        self._huge = huge_bytes
        #: Called with (connection, method, path) before answering a start, after counting
        #: it; may sleep; returning False drops the connection without an answer.
        self.on_start: Callable[[socket.socket, str, str], bool] | None = None
        self._accept = threading.Thread(target=self._serve, name="hostile-accept", daemon=True)
        self._accept.start()

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._stopping.set()
        self._accept.join(5)
        self._listener.close()
        for thread in list(self._threads):
            thread.join(MAX_SECONDS + 2)
        assert not any(t.is_alive() for t in self._threads), "a handler outlived the server"

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._handle, args=(connection,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    # -- one connection ---------------------------------------------------------------------

    def _handle(self, connection: socket.socket) -> None:
        started = time.monotonic()
        connection.settimeout(1.0)
        try:
            with connection:
                while not self._stopping.is_set() and time.monotonic() - started < MAX_SECONDS:
                    request = self._read_request(connection)
                    if request is None:
                        return
                    method, path, headers = request
                    with self._lock:
                        self.requests.append((method, path))
                    if not self._answer(connection, method, path, headers, started):
                        return
        except OSError:
            return  # the client went away: that is what hostile tests expect

    @staticmethod
    def _read_request(connection: socket.socket) -> tuple[str, str, dict[str, str]] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return method, path, headers

    def _trickle(self, connection: socket.socket, data: bytes, started: float) -> None:
        """Send ``data`` one byte every ``TRICKLE`` seconds while the handler may live."""
        for index in range(len(data)):
            if not self._alive(started):
                return
            connection.sendall(data[index : index + 1])
            time.sleep(TRICKLE)

    def _alive(self, started: float) -> bool:
        return not self._stopping.is_set() and time.monotonic() - started < MAX_SECONDS

    def creations(self, path: str) -> int:
        """How many operations the starts sent to ``path`` created: each POST without an
        ``Operation-Id`` creates one; starts with the same id, or PUTs to the same path,
        are one."""
        with self._lock:
            return len(self._creations.get(path, set()))

    def _json(self, connection: socket.socket, document: object, status: str = "200 OK") -> None:
        body = json.dumps(document).encode()
        connection.sendall(
            (
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )

    def _answer(
        self,
        connection: socket.socket,
        method: str,
        path: str,
        headers: dict[str, str],
        started: float,
    ) -> bool:
        """Answer one request; False closes the connection."""
        route = path.split("?", 1)[0]
        name = route.rstrip("/").rsplit("/", 1)[-1]
        if route.startswith("/start/") and method == "GET":  # a PUT's resource: its value
            self._json(connection, {"id": name})
            return True
        if route.startswith("/start/"):
            with self._lock:
                self.created[route] += 1
                identity = headers.get("operation-id") or (
                    route if method == "PUT" else str(self.created[route])
                )
                self._creations.setdefault(route, set()).add(identity)
            if self.on_start is not None and not self.on_start(connection, method, path):
                return False
            monitor = f"/mon/{name}"
            extra = ""
            if name.startswith("secret"):
                monitor = f"/mon/{name}?sv=1&sig={SECRET}"
                extra = f"Location: /final/{name}?sig={SECRET}\r\n"
            body = b'{"status": "Running"}'
            connection.sendall(
                (
                    f"HTTP/1.1 202 Accepted\r\nOperation-Location: {monitor}\r\n{extra}"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            return True
        if route.endswith(":cancel"):
            self._json(connection, {"error": {"code": "Conflict"}}, "409 Conflict")
            return True
        if route.startswith("/mon/") and name in ("final-huge", "final-endless"):
            resource = f"/res/{name.partition('-')[2]}"
            self._json(connection, {"status": "Succeeded", "resourceLocation": resource})
            return True
        if route.startswith("/mon/") and name == "secret-final":
            location = f"/res/secret-final?sig={SECRET}"
            self._json(connection, {"status": "Succeeded", "resourceLocation": location})
            return True
        if route.startswith("/mon/") and name == "fail":
            self._json(connection, {"error": {"code": "Gone"}}, "404 Not Found")
            return True
        if name == "trickle-headers":
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 200
            )
            self._trickle(connection, head, started)
            return False
        if name == "trickle-body":
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 10000\r\n\r\n"
            )
            payload = b'{"status": "Running", "pad": "' + b" " * 9000
            self._trickle(connection, payload, started)
            return False
        if name == "endless":
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            block = b" " * 65536
            chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
            connection.sendall(b'1e\r\n{"status": "Running", "pad": "\r\n')
            while self._alive(started):
                connection.sendall(chunk)
                time.sleep(0.001)
            return False
        if name == "bomb":
            body = _bomb(self._bomb_bytes)
            connection.sendall(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            return True
        if name == "huge":
            size = self._huge
            connection.sendall(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {size}\r\n\r\n"
                ).encode()
            )
            block = b" " * (1 << 20)
            sent = 0
            while sent < size and self._alive(started):
                connection.sendall(block[: size - sent])
                sent += len(block)
            return False
        if name.startswith("secret"):
            # Every answer about the secret operation is unusable, so that each error path
            # that names a URL is taken: a monitor body that is not JSON at all.
            body = b"<html>oops</html>"
            connection.sendall(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            return True
        self._json(connection, {"status": "Succeeded", "result": {"ok": True}})
        return True
