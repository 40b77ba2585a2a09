"""Rehydration tokens: lrokit's next to azure-core's continuation token, same run, same operation.

Run ``python bench/bench_tokens.py`` (full, about half a minute) or ``--quick`` (seconds).
For each operation, both libraries see the very same start response (replayed from memory;
no network): lrokit through ``Operation.receive``, azure-core through ``LROBasePolling`` over
a ``RequestsTransport`` whose session answers from memory. Measured:

* size: characters of the token as each library hands it out;
* encode: ``str(operation.rehydration_token)`` vs ``LROBasePolling.get_continuation_token()``;
* decode, read: ``RehydrationToken.from_str`` vs ``LROBasePolling.from_continuation_token``
  (token to parts, nothing checked against a client);
* decode, ready to poll: ``Operation.rehydrate(client, token)`` (which also checks every URL
  against the client's origins) vs ``from_continuation_token`` + ``initialize`` on a new
  ``LROBasePolling``, which is what ``LROPoller.from_continuation_token`` does before it
  starts its polling thread.

Times are medians of interleaved repeats (every variant once per repeat, in turn) with the
garbage collector paused. Targets: lrokit at most a quarter of azure-core's time and two
thirds of its size; each printed with PASS or MISS. ``--check`` exits with 1 on a MISS.
azure-core is an optional dependency (``pip install -e '.[bench]'``); without it, only
lrokit's figures are printed. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if importlib.util.find_spec("lrokit") is None:  # a checkout without install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import requests
from _report import print_machine, verdict

from lrokit import Operation, Pipeline, RehydrationToken, ResponseView
from lrokit.demo import DemoService

TIME_TARGET = 0.25
SIZE_TARGET = 2 / 3


@dataclass(frozen=True)
class Start:
    """One operation's start: the request and the response both libraries receive."""

    name: str
    method: str
    url: str
    request_headers: dict[str, str]
    body: Any
    status: int
    headers: dict[str, str]
    content: bytes
    endpoint: str
    polling_header: str  # the header azure-core's LROBasePolling must follow


def demo_start() -> Start:
    """The embedded demo service's answer to ``create_vector_store``, captured over HTTP."""
    with DemoService(retry_after=1.0) as service:
        url = f"{service.endpoint}vector_stores?api-version=2024-01-01"
        body = {"name": "docs", "file_ids": ["file-1", "file-2"]}
        headers = {"x-ms-client-request-id": "7d5b1c2e-0000-4000-8000-000000000001"}
        with requests.Session() as session:
            response = session.post(url, json=body, headers=headers, timeout=10)
        kept = ("Operation-Location", "Retry-After", "Content-Type", "Content-Length")
        return Start(
            name="demo create_vector_store: POST 202 + Operation-Location",
            method="POST",
            url=url,
            request_headers=headers,
            body=body,
            status=response.status_code,
            headers={k: response.headers[k] for k in kept if k in response.headers},
            content=response.content,
            endpoint=service.endpoint,
            polling_header="operation-location",
        )


def arm_start() -> Start:
    """An ARM-style PUT answered with 201, the resource body and Azure-AsyncOperation."""
    base = "https://management.azure.com"
    resource = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-bench"
        "/providers/Microsoft.Storage/storageAccounts/benchstore"
    )
    api = "api-version=2023-05-01"
    monitor = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Storage"
        f"/locations/eastus/asyncoperations/3b9f2c1e-7a4d-4e5f-9c8b-1d2e3f4a5b6c?{api}"
    )
    document = {
        "id": resource,
        "name": "benchstore",
        "type": "Microsoft.Storage/storageAccounts",
        "location": "eastus",
        "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "kind": "StorageV2",
        "tags": {"env": "bench"},
        "properties": {"provisioningState": "Creating", "accessTier": "Hot"},
    }
    return Start(
        name="ARM PUT 201 + Azure-AsyncOperation, resource body",
        method="PUT",
        url=f"{base}{resource}?{api}",
        request_headers={"x-ms-client-request-id": "7d5b1c2e-0000-4000-8000-000000000002"},
        body={"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"},
        status=201,
        headers={
            "Azure-AsyncOperation": f"{base}{monitor}",
            "Retry-After": "17",
            "Content-Type": "application/json",
            "x-ms-request-id": "c0ffee00-0000-4000-8000-000000000003",
        },
        content=json.dumps(document).encode(),
        endpoint=f"{base}/",
        polling_header="azure-asyncoperation",
    )


# -- lrokit --------------------------------------------------------------------------------------


class BenchOperation(Operation[Any]):
    """The operation class both tokens belong to."""


@dataclass
class Lrokit:
    """An lrokit operation that received ``start``, and a client to restore it with."""

    start: Start
    pipeline: Pipeline = field(init=False)
    operation: BenchOperation = field(init=False)
    token: str = field(init=False)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(self.start.endpoint)
        core = BenchOperation._new_core(self.pipeline, self.start.method, self.start.url, None)
        self.operation = BenchOperation(self.pipeline, core)
        view = ResponseView.build(
            self.start.status, self.start.headers, self.start.content, self.start.url
        )
        self.operation.receive(view)
        self.token = str(self.operation.rehydration_token)
        resumed = BenchOperation.rehydrate(self.pipeline, self.token)
        assert resumed.core.next_request_url == self.operation.core.next_request_url

    def encode(self) -> str:
        return str(self.operation.rehydration_token)

    def read(self) -> object:
        return RehydrationToken.from_str(self.token)

    def restore(self) -> object:
        return BenchOperation.rehydrate(self.pipeline, self.token)


# -- azure-core ----------------------------------------------------------------------------------


class Azure:
    """azure-core's LROBasePolling after the same start response, over an in-memory session."""

    def __init__(self, start: Start) -> None:
        from azure.core import PipelineClient
        from azure.core.pipeline.transport import RequestsTransport
        from azure.core.polling.base_polling import (
            LocationPolling,
            LROBasePolling,
            OperationResourcePolling,
            StatusCheckPolling,
        )
        from azure.core.rest import HttpRequest

        class Replay(requests.adapters.BaseAdapter):
            def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
                response = requests.Response()
                response.status_code = start.status
                response.headers.update(start.headers)
                response._content = start.content
                response.raw = io.BytesIO(start.content)
                response.url = str(request.url)
                response.request = request
                response.reason = "Accepted"
                return response

            def close(self) -> None:
                pass

        session = requests.Session()
        session.mount("http://", Replay())
        session.mount("https://", Replay())
        self.client = PipelineClient(
            start.endpoint, transport=RequestsTransport(session=session, session_owner=False)
        )
        request = HttpRequest(
            start.method, start.url, json=start.body, headers=start.request_headers
        )
        initial = self.client._pipeline.run(request)
        self.algorithms = lambda: [
            OperationResourcePolling(start.polling_header),
            LocationPolling(),
            StatusCheckPolling(),
        ]
        self.polling_class = LROBasePolling
        self.callback: Callable[[Any], Any] = lambda response: json.loads(response.text())
        self.polling = LROBasePolling(timeout=0, lro_algorithms=self.algorithms())
        self.polling.initialize(self.client, initial, self.callback)
        self.token = self.polling.get_continuation_token()
        ready = self.restore()
        assert ready._operation.get_polling_url() == self.polling._operation.get_polling_url()

    def encode(self) -> str:
        return str(self.polling.get_continuation_token())

    def read(self) -> object:
        return self.polling_class.from_continuation_token(
            self.token, client=self.client, deserialization_callback=self.callback
        )

    def restore(self) -> Any:
        client, initial, callback = self.polling_class.from_continuation_token(
            self.token, client=self.client, deserialization_callback=self.callback
        )
        polling = self.polling_class(timeout=0, lro_algorithms=self.algorithms())
        polling.initialize(client, initial, callback)
        return polling


# -- measuring -----------------------------------------------------------------------------------


def timed(function: Callable[[], object], count: int) -> float:
    """Seconds per call of ``function`` over ``count`` calls (timeit pauses the collector)."""
    return timeit.Timer(function).timeit(count) / count


def medians(
    variants: dict[str, Callable[[], object]], count: int, repeats: int
) -> dict[str, float]:
    """The median time per call of each variant; the repeats of all variants interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for function in variants.values():
        timed(function, max(1, count // 10))  # warm up
    for _ in range(repeats):
        for name, function in variants.items():
            samples[name].append(timed(function, count))
    return {name: statistics.median(values) for name, values in samples.items()}


def run_start(start: Start, count: int, repeats: int, with_azure: bool) -> list[str]:
    """Measure one operation; print its table; return the missed targets."""
    ours = Lrokit(start)
    variants: dict[str, Callable[[], object]] = {
        "lrokit encode": ours.encode,
        "lrokit read": ours.read,
        "lrokit restore": ours.restore,
    }
    theirs = Azure(start) if with_azure else None
    if theirs is not None:
        variants |= {
            "azure encode": theirs.encode,
            "azure read": theirs.read,
            "azure restore": theirs.restore,
        }
    times = medians(variants, count, repeats)
    print(f"\n{start.name}")
    print(f"  start: {start.method} {start.url}")
    print(f"  answer: HTTP {start.status}, body {len(start.content)} bytes")
    header = f"  {'':34} {'lrokit':>10} {'azure-core':>11} {'ratio':>7} {'target':>8}"
    print(header)
    missed: list[str] = []
    rows = [
        ("token size (characters)", len(ours.token), theirs and len(theirs.token), SIZE_TARGET),
        ("encode (us)", times["lrokit encode"], theirs and times["azure encode"], TIME_TARGET),
        ("decode, read (us)", times["lrokit read"], theirs and times["azure read"], TIME_TARGET),
        (
            "decode, ready to poll (us)",
            times["lrokit restore"],
            theirs and times["azure restore"],
            TIME_TARGET,
        ),
    ]
    for label, mine, other, target in rows:
        shown = f"{mine:>10}" if isinstance(mine, int) else f"{mine * 1e6:>10.2f}"
        if not other:
            print(f"  {label:34} {shown}")
            continue
        other_shown = f"{other:>11}" if isinstance(other, int) else f"{other * 1e6:>11.2f}"
        ratio = mine / other
        ok = ratio <= target
        print(
            f"  {label:34} {shown} {other_shown} {ratio:>7.2f} {'<= ' + format(target, '.2f'):>8}"
            f"  {verdict(ok)}"
        )
        if not ok:
            missed.append(f"{start.name}: {label}")
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; with ``--check``, 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a few seconds)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    count, repeats = (2_000, 5) if args.quick else (20_000, 9)
    with_azure = importlib.util.find_spec("azure.core") is not None
    began = time.perf_counter()
    print(f"lrokit token benchmark ({'quick' if args.quick else 'full'} mode)")
    print_machine()
    print(
        f"method: medians of {repeats} interleaved repeats of {count:,} calls each, collector"
        f" paused; targets: time <= {TIME_TARGET:.2f} x azure-core, size <= {SIZE_TARGET:.2f} x"
    )
    if not with_azure:
        print("azure-core is not installed (pip install -e '.[bench]'): lrokit figures only")
    missed: list[str] = []
    for start in (demo_start(), arm_start()):
        missed += run_start(start, count, repeats, with_azure)
    print(f"\n{'all targets met' if not missed else 'missed: ' + '; '.join(missed)}")
    print(f"(took {time.perf_counter() - began:.1f} s)")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
