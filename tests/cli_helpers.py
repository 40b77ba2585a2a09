"""What the command-line tests share (imported by name, ``from cli_helpers import ...``, as
``suite_helpers`` is): starting an operation on the demo service by hand, and running
``lrokit`` in-process with its output captured."""

from __future__ import annotations

import pytest
import requests

from lrokit._cli import main
from lrokit.demo import API_VERSION, DemoService


def start(service: DemoService, name: str = "store") -> str:
    """Start an operation on ``service``; returns its absolute status monitor URL."""
    with requests.Session() as http:
        answer = http.post(
            f"{service.endpoint}vector_stores?api-version={API_VERSION}",
            json={"name": name},
            timeout=10,
        )
    assert answer.status_code == 202
    return service.endpoint + answer.headers["Operation-Location"].lstrip("/")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``lrokit ARGV...`` in this process: its exit status, standard output and error."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
