"""Request economy: requests per spector conformance scenario, lrokit next to azure-core.

Every LRO scenario of the Azure HTTP specs (the table of ``tests/conformance/test_spector.py``)
is run against one spector mock server (started as the conformance fixture starts it, with
its helpers): once through lrokit's ``Operation.start`` + ``wait_for_completion``, once
through azure-core's documented path: the start request through a ``PipelineClient``, then
``LROPoller`` with ``LROBasePolling`` (Azure.Core scenarios) or azure-mgmt-core's
``ARMPolling`` (ARM scenarios, what ARM SDKs use), both with their default options, as lrokit
runs with its defaults. Neither side really sleeps (lrokit: a fake clock; azure-core: a
transport whose ``sleep`` returns at once). Counted: the requests each side sent for the
operation (the pager's ``nextLink`` page of the paging scenario is not part of it), and
whether each side's value equals the table's expected value.

Needs Node.js and ``npm ci --prefix tests/conformance``; without them the section reports why
it did not run. Run ``python bench/bench_economy.py`` on its own, or ``bench/run_all.py``.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import requests

from lrokit import Operation, OperationState, Pipeline, PollingPolicy

CONFORMANCE = Path(__file__).resolve().parents[1] / "tests" / "conformance"


def _load(name: str, path: Path) -> ModuleType:
    # The conformance modules import the suite's shared helpers (tests/*.py) by name, as
    # they do under pytest.
    if str(CONFORMANCE.parent) not in sys.path:
        sys.path.append(str(CONFORMANCE.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Unavailable(Exception):
    """The section cannot run here (no Node.js, no spector packages, no azure-core)."""


@contextmanager
def spector_server() -> Iterator[Any]:
    """A spector server on 127.0.0.1, started and stopped as the conformance fixture does."""
    import pytest

    fixtures = _load("lrokit_bench_spector_fixtures", CONFORMANCE / "conftest.py")
    try:
        node = fixtures._node()
    except (pytest.skip.Exception, pytest.fail.Exception) as error:
        raise Unavailable(str(error)) from None
    with (
        tempfile.TemporaryDirectory(prefix="lrokit-bench-spector-") as temp,
        fixtures.run_spector(node, Path(temp)) as server,
    ):
        yield server


@dataclass
class Outcome:
    """One scenario on both sides."""

    name: str
    operations: int
    expected: int  # requests of the operations in the conformance table
    lrokit: int
    lrokit_correct: bool
    azure: int | None
    azure_correct: bool | None
    azure_polling: str
    note: str = ""


def _counting_session(sent: list[requests.PreparedRequest]) -> requests.Session:
    session = requests.Session()
    session.hooks["response"].append(lambda r, *args, **kwargs: sent.append(r.request))
    return session


def run_lrokit(table: ModuleType, endpoint: str, scenario: Any) -> tuple[int, bool]:
    """The conformance driver's way: requests of the operations (pages apart), value right."""
    sent: list[requests.PreparedRequest] = []
    time_ = table.FakeClock()
    policy = PollingPolicy(interval=1.0, max_retries=0)
    base = endpoint.rstrip("/")
    correct = True
    with Pipeline(
        endpoint, _counting_session(sent), polling=policy, clock=time_, sleep=time_.sleep
    ) as pipeline:
        for call in scenario.calls:
            operation: Operation[Any] = Operation.start(
                pipeline,
                call.method,
                call.path.lstrip("/"),
                params={"api-version": call.api_version, **call.query},
                json=call.body,
            )
            operation.wait_for_completion(timeout=60)
            correct &= operation.state is OperationState.SUCCEEDED
            correct &= operation.value == table.fill(call.value, base)
    return len(sent), correct


def _azure_value(method: str, response: Any) -> Any:
    """What a generated SDK's deserialization callback returns: nothing for a DELETE, the
    ``result`` of a final status monitor, else the final body."""
    if method == "DELETE":
        return None
    http = response.http_response
    if not http.content:
        return None
    document = http.json()
    if isinstance(document, dict) and "status" in document and "result" in document:
        return document["result"]
    return document


def run_azure(table: ModuleType, endpoint: str, scenario: Any) -> tuple[int, bool, str]:
    """azure-core's documented path over a requests session that counts what it sends."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.polling import LROPoller
    from azure.core.polling.base_polling import LROBasePolling
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class NoSleepTransport(RequestsTransport):  # type: ignore[misc]
        """azure-core's requests transport whose waits return at once (lrokit's fake clock
        does the same for lrokit): Retry-After is obeyed in count, not in time."""

        def sleep(self, duration: float) -> None:
            pass

    class ApiVersionPolicy(SansIOHTTPPolicy):  # type: ignore[misc]
        """azure-core does not carry the start request's api-version onto polling URLs that
        lack it, and the mocks require it: a per-call policy adds it, as an SDK would."""

        api_version = ""

        def on_request(self, request: Any) -> None:
            http = request.http_request
            if "api-version=" not in http.url:
                separator = "&" if "?" in http.url else "?"
                http.url = f"{http.url}{separator}api-version={self.api_version}"

    sent: list[requests.PreparedRequest] = []
    session = _counting_session(sent)
    versions = ApiVersionPolicy()
    arm = scenario.name.startswith("Azure_ResourceManager")
    base = endpoint.rstrip("/")
    correct = True
    transport = NoSleepTransport(session=session, session_owner=False)
    with PipelineClient(endpoint, transport=transport, per_call_policies=[versions]) as client:
        for call in scenario.calls:
            versions.api_version = call.api_version
            request = HttpRequest(
                call.method,
                base + call.path,
                params={"api-version": call.api_version, **call.query},
                json=call.body,
            )
            initial = client._pipeline.run(request)
            method = ARMPolling(timeout=0) if arm else LROBasePolling(timeout=0)
            poller = LROPoller(
                client, initial, lambda response, m=call.method: _azure_value(m, response), method
            )
            value = poller.result(timeout=60)
            correct &= poller.status().lower() == "succeeded"
            correct &= value == table.fill(call.value, base)
    session.close()
    return len(sent), correct, "ARMPolling" if arm else "LROBasePolling"


def run(with_azure: bool | None = None) -> list[Outcome]:
    """Every scenario of the conformance table on both sides.

    Raises:
        Unavailable: spector cannot run here.
    """
    if with_azure is None:
        with_azure = (
            importlib.util.find_spec("azure.core") is not None
            and importlib.util.find_spec("azure.mgmt") is not None
            and importlib.util.find_spec("azure.mgmt.core") is not None
        )
    table = _load("lrokit_bench_spector_table", CONFORMANCE / "test_spector.py")
    outcomes: list[Outcome] = []
    with spector_server() as server:
        for scenario in table.SCENARIOS:
            pages = sum(len(call.pages) for call in scenario.calls)
            expected = len(scenario.requests) - pages
            ours, ours_ok = run_lrokit(table, server.endpoint, scenario)
            theirs: int | None = None
            theirs_ok: bool | None = None
            polling = ""
            if with_azure:
                theirs, theirs_ok, polling = run_azure(table, server.endpoint, scenario)
            outcomes.append(
                Outcome(
                    scenario.name,
                    len(scenario.calls),
                    expected,
                    ours,
                    ours_ok,
                    theirs,
                    theirs_ok,
                    polling,
                )
            )
    return outcomes


def main() -> int:
    """Print the table."""
    try:
        outcomes = run()
    except Unavailable as error:
        print(f"request economy not measured: {error}")
        return 0
    for o in outcomes:
        print(
            f"{o.name:90} ops {o.operations}  table {o.expected:2}  lrokit {o.lrokit:2}"
            f" {'ok' if o.lrokit_correct else 'WRONG'}  azure {o.azure} {o.azure_polling}"
            f" {'ok' if o.azure_correct else 'WRONG'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
