"""``Operation.from_monitor``: following an operation from its status monitor URL alone.

The operation is built from the start response the service would have sent (202 with
``Operation-Location``), so every rule of a real start applies: origin checks, api-version,
final-state-via. HTTP goes through ``responses``, time through the fake clock.
"""

from __future__ import annotations

import pytest
import requests
import responses

from lrokit import (
    FinalStateVia,
    Operation,
    OperationFailedError,
    OperationState,
    ProtocolOptions,
    UntrustedOriginError,
)

S = OperationState
HOST = "https://svc.example.com"
MONITOR = f"{HOST}/operations/7?api-version=2024-01-01"
STORE = f"{HOST}/stores/7?api-version=2024-01-01"


def answer_monitor(rsps, *documents):
    for document in documents:
        rsps.add(responses.GET, MONITOR, json=document)


def test_it_is_running_and_sends_nothing(pipeline, rsps):
    operation = Operation.from_monitor(pipeline, MONITOR)

    assert operation.state is S.RUNNING
    assert not operation.has_completed
    assert operation.core.polling_url == MONITOR
    assert operation.get_raw_response() is None
    assert len(rsps.calls) == 0


def test_it_polls_the_monitor_then_reads_the_resource_location(pipeline, rsps, clock):
    answer_monitor(
        rsps,
        {"status": "Running", "percentComplete": 40},
        {"status": "Succeeded", "resourceLocation": "/stores/7"},
    )
    rsps.add(responses.GET, STORE, json={"id": "7", "name": "s"})

    operation = Operation.from_monitor(pipeline, MONITOR).wait_for_completion()

    assert operation.value == {"id": "7", "name": "s"}
    # The api-version of the monitor URL is carried onto resourceLocation.
    assert [call.request.url for call in rsps.calls] == [MONITOR, MONITOR, STORE]
    assert clock.sleeps == [1.0, 1.0]


def test_without_resource_location_the_value_is_the_monitors_result(pipeline, rsps):
    answer_monitor(rsps, {"status": "Succeeded", "result": {"answer": 42}})

    operation = Operation.from_monitor(pipeline, MONITOR).wait_for_completion()

    assert operation.value == {"answer": 42}
    assert len(rsps.calls) == 1


def test_a_relative_url_is_relative_to_the_endpoint(pipeline, rsps):
    operation = Operation.from_monitor(pipeline, "/operations/7?api-version=2024-01-01")

    assert operation.core.polling_url == MONITOR


@pytest.mark.parametrize(
    "arguments",
    [
        {"url": "https://evil.example.net/operations/7"},
        {"url": MONITOR, "location": "https://evil.example.net/stores/7"},
        {"url": MONITOR, "start_url": "https://evil.example.net/stores/7"},
    ],
)
def test_urls_outside_the_trusted_origins_are_refused(pipeline, rsps, arguments):
    url = arguments.pop("url")
    with pytest.raises(UntrustedOriginError):
        Operation.from_monitor(pipeline, url, **arguments)
    assert len(rsps.calls) == 0


def test_final_state_via_location_reads_the_location(pipeline, rsps):
    location = f"{HOST}/results/7"
    answer_monitor(rsps, {"status": "Succeeded", "resourceLocation": "/stores/7"})
    rsps.add(responses.GET, f"{location}?api-version=2024-01-01", json={"from": "location"})

    operation = Operation.from_monitor(
        pipeline,
        MONITOR,
        location=location,
        options=ProtocolOptions(final_state_via=FinalStateVia.LOCATION),
    ).wait_for_completion()

    assert operation.value == {"from": "location"}


def test_final_state_via_operation_location_keeps_the_monitors_result(pipeline, rsps):
    answer_monitor(
        rsps, {"status": "Succeeded", "resourceLocation": "/stores/7", "result": {"r": 1}}
    )

    operation = Operation.from_monitor(
        pipeline, MONITOR, options=ProtocolOptions(final_state_via="operation-location")
    ).wait_for_completion()

    assert operation.value == {"r": 1}
    assert len(rsps.calls) == 1  # no GET of the resourceLocation


def test_a_put_reads_its_start_url_as_a_real_start_would(pipeline, rsps):
    answer_monitor(rsps, {"status": "Succeeded"})
    rsps.add(responses.GET, STORE, json={"id": "7"})

    operation = Operation.from_monitor(
        pipeline, MONITOR, method="PUT", start_url=STORE
    ).wait_for_completion()

    assert operation.value == {"id": "7"}
    assert operation.core.initial_url == STORE
    assert operation.core.method == "PUT"


def test_failure_carries_the_services_error(pipeline, rsps):
    answer_monitor(rsps, {"status": "Failed", "error": {"code": "Boom", "message": "no"}})

    operation = Operation.from_monitor(pipeline, MONITOR).wait_for_completion()

    assert operation.state is S.FAILED
    with pytest.raises(OperationFailedError) as caught:
        operation.value  # noqa: B018
    assert caught.value.service_error is not None
    assert caught.value.service_error.code == "Boom"


def test_its_token_resumes_the_same_operation(pipeline, rsps):
    answer_monitor(rsps, {"status": "Running"}, {"status": "Succeeded", "result": 5})
    first = Operation.from_monitor(pipeline, MONITOR)
    first.update_status()

    resumed = Operation.rehydrate(pipeline, str(first.rehydration_token))

    assert resumed.state is S.RUNNING
    assert resumed.core.polling_url == MONITOR
    assert resumed.core.attempt == 1
    assert resumed.wait_for_completion().value == 5


def test_hooks_see_the_transitions_after_construction(pipeline, rsps):
    answer_monitor(rsps, {"status": "Running"}, {"status": "Succeeded", "result": None})
    operation = Operation.from_monitor(pipeline, MONITOR)
    changes = []
    operation.on_change(lambda change: changes.append((change.previous, change.state)))

    operation.wait_for_completion()

    assert changes == [(S.RUNNING, S.SUCCEEDED)]


@pytest.mark.parametrize("how", ["from_monitor", "rehydrate"])
def test_poll_iter_reports_a_first_poll_without_an_answer(pipeline, rsps, clock, how):
    # No response has been processed yet by such an operation: the fault is still an update.
    rsps.add(responses.GET, MONITOR, body=requests.ConnectionError("refused"))
    answer_monitor(rsps, {"status": "Succeeded", "result": 1})
    operation = Operation.from_monitor(pipeline, MONITOR)
    if how == "rehydrate":
        operation = Operation.rehydrate(pipeline, operation.rehydration_token)

    updates = list(operation.poll_iter())

    fault, done = updates
    assert (fault.state, fault.raw_status, fault.status, fault.attempt) == (
        S.RUNNING,
        None,
        None,
        0,
    )
    assert fault.next_delay is not None
    assert fault.next_delay.seconds == 0.5  # the retry back-off
    assert (done.state, done.raw_status) == (S.SUCCEEDED, "Succeeded")
    assert operation.value == 1
    assert clock.sleeps == [1.0, 0.5]
