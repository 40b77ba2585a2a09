"""Every LRO scenario of the Azure HTTP specs, driven through lrokit against spector's mocks.

One table row per spector scenario: the start request(s), the expected value, and the exact
requests the server must have seen (method, URL as received, status). One driver runs every
row the same way, through the public API only: ``Operation.start``, ``wait_for_completion``
(with a fake clock and a zero sleep) and ``value``. It then checks the value, that the server
saw exactly the expected requests and no other, that they are the requests lrokit sent, that
every one of them carried the operation's ``x-ms-client-request-id``, that the server
reports no validation warning, and that spector's own verdict for the scenario is "pass".

The one step beyond the operation is the pager's: when a value has a ``nextLink`` (the
paging LRO), the further pages are read through the same pipeline, as an SDK's pager would;
those requests are counted apart from the operation's.

The mock definitions these rows follow are the ``mockapi.ts`` files under
``node_modules/@azure-tools/azure-http-specs/specs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from lrokit import Operation, OperationState, Pipeline, PollingPolicy
from lrokit.testing import FakeClock

SPECS = (
    Path(__file__).resolve().parent / "node_modules" / "@azure-tools" / "azure-http-specs" / "specs"
)

# -- the mocks' data ---------------------------------------------------------------------------

CORE_API = "2022-12-01-preview"
ARM_API = "2023-12-01-preview"
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
RG = f"{SUB}/resourceGroups/test-rg"
TEMPLATES = "/providers/Azure.ResourceManager.OperationTemplates"
RESOURCES = "/providers/Azure.ResourceManager.Resources"
SIX_KB = "a" * 6 * 1024
BASE = "{base}"  # the server's base URL in expected values, filled in at run time

SYSTEM_DATA = {
    "createdBy": "AzureSDK",
    "createdByType": "User",
    "createdAt": "2024-10-04T00:56:07.442Z",
    "lastModifiedBy": "AzureSDK",
    "lastModifiedAt": "2024-10-04T00:56:07.442Z",
    "lastModifiedByType": "User",
}


def arm(resource_id: str, type_: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An ARM resource body as the mocks build it."""
    body: dict[str, Any] = {"id": resource_id, "name": resource_id.rsplit("/", 1)[1]}
    body["type"] = type_
    body.update(extra)
    body["properties"] = properties
    return body


ORDER = arm(
    f"{RG}{TEMPLATES}/orders/order1",
    "Azure.ResourceManager.Resources/orders",
    {"provisioningState": "Succeeded", "productId": "product1", "amount": 1},
    location="eastus",
)
ORDER["systemData"] = SYSTEM_DATA
PRODUCTS_PAGE1 = {
    "value": [
        arm(
            f"{RG}{TEMPLATES}/products/product1",
            "Azure.ResourceManager.OperationTemplates/products",
            {"provisioningState": "Succeeded", "productId": "product1"},
            location="eastus",
        )
    ],
    "nextLink": f"{BASE}{SUB}{TEMPLATES}/locations/eastus/operations/"
    f"lro_paging_post_location/nextPage?api-version={ARM_API}",
}
PRODUCTS_PAGE2 = {
    "value": [
        arm(
            f"{RG}{TEMPLATES}/products/product2",
            "Azure.ResourceManager.OperationTemplates/products",
            {"provisioningState": "Succeeded", "productId": "product2"},
            location="eastus",
        )
    ]
}
TOP = f"{RG}{RESOURCES}/topLevelTrackedResources/top"
NESTED = f"{TOP}/nestedProxyResources/nested"
SINGLETON = f"{RG}{RESOURCES}/singletonTrackedResources/default"
VALID = {"provisioningState": "Succeeded", "description": "valid"}
VALID2 = {"provisioningState": "Succeeded", "description": "valid2"}


def top_resource(properties: dict[str, Any]) -> dict[str, Any]:
    body = arm(
        TOP,
        "Azure.ResourceManager.Resources/topLevelTrackedResources",
        properties,
        location="eastus",
    )
    return {**body, "systemData": SYSTEM_DATA}


def nested_resource(properties: dict[str, Any]) -> dict[str, Any]:
    body = arm(
        NESTED,
        "Azure.ResourceManager.Resources/topLevelTrackedResources/top/nestedProxyResources",
        properties,
    )
    return {**body, "systemData": SYSTEM_DATA}


def extension(scope: str) -> dict[str, Any]:
    body = arm(
        f"{scope}{RESOURCES}/extensionsResources/extension",
        "Azure.ResourceManager.Resources/extensionsResources",
        {"description": "valid", "provisioningState": "Succeeded"},
    )
    return {**body, "systemData": SYSTEM_DATA}


EXTENSION_SCOPES = (RG, SUB, "", TOP)

# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One operation: its start request and the value it must end with."""

    method: str
    path: str
    api_version: str
    value: Any
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    pages: tuple[Any, ...] = ()  # further pages behind the value's nextLink


@dataclass(frozen=True)
class Scenario:
    """A spector scenario: its operations and every request the server must see."""

    name: str
    calls: tuple[Call, ...]
    requests: tuple[tuple[str, str, int], ...]


def q(path: str, api_version: str, extra: str = "") -> str:
    """``path`` with its query as lrokit sends it: the URL's own query, then api-version."""
    query = f"{extra}&api-version={api_version}" if extra else f"api-version={api_version}"
    return f"{path}?{query}"


def put_done(
    name: str, path: str, api: str, body: Any, value: Any, method: str = "PUT"
) -> Scenario:
    """An ARM "async" operation whose mock answers the start request with the final 200."""
    return Scenario(
        name, (Call(method, path, api, value, body=body),), ((method, q(path, api), 200),)
    )


STD = "/azure/core/lro/standard/users/madge"
OPS = f"{SUB}{TEMPLATES}/locations/eastus"
LARGE = f"{SUB}/providers/Azure.ResourceManager.LargeHeaders/locations/eastus/operations"
SERVICE = f"{RG}/providers"

SCENARIOS = [
    # Azure.Core standard: Operation-Location monitors.
    Scenario(
        "Azure_Core_Lro_Standard_createOrReplace",
        (
            Call(
                "PUT",
                STD,
                CORE_API,
                {"name": "madge", "role": "contributor"},
                body={"role": "contributor"},
            ),
        ),
        (
            ("PUT", q(STD, CORE_API), 201),
            ("GET", q(f"{STD}/operations/operation1", CORE_API), 200),
            ("GET", q(f"{STD}/operations/operation1", CORE_API), 200),
            ("GET", q(STD, CORE_API), 200),  # PUT: the original URL holds the result
        ),
    ),
    Scenario(
        "Azure_Core_Lro_Standard_delete",
        (Call("DELETE", STD, CORE_API, None),),
        (
            ("DELETE", q(STD, CORE_API), 202),
            ("GET", q(f"{STD}/operations/operation2", CORE_API), 200),
            ("GET", q(f"{STD}/operations/operation2", CORE_API), 200),
        ),
    ),
    Scenario(
        "Azure_Core_Lro_Standard_export",
        (
            Call(
                "POST",
                f"{STD}:export",
                CORE_API,
                {"name": "madge", "resourceUri": "/users/madge"},
                query={"format": "json"},
            ),
        ),
        (
            ("POST", f"{STD}:export?api-version={CORE_API}&format=json", 202),
            ("GET", q(f"{STD}/operations/operation3", CORE_API), 200),
            ("GET", q(f"{STD}/operations/operation3", CORE_API), 200),  # result: the value
        ),
    ),
    Scenario(
        "Azure_Core_Lro_Rpc_longRunningRpc",
        (
            Call(
                "POST",
                "/azure/core/lro/rpc/generations:submit",
                CORE_API,
                {"data": "text data"},
                body={"prompt": "text"},
            ),
        ),
        (
            ("POST", q("/azure/core/lro/rpc/generations:submit", CORE_API), 202),
            ("GET", q("/azure/core/lro/rpc/generations/operations/operation1", CORE_API), 200),
            ("GET", q("/azure/core/lro/rpc/generations/operations/operation1", CORE_API), 200),
        ),
    ),
    # ARM operation templates: Azure-AsyncOperation and Location.
    Scenario(
        "Azure_ResourceManager_OperationTemplates_Lro_createOrReplace",
        (
            Call(
                "PUT",
                f"{RG}{TEMPLATES}/orders/order1",
                ARM_API,
                ORDER,
                body={"location": "eastus", "properties": {"productId": "product1", "amount": 1}},
            ),
        ),
        (
            ("PUT", q(f"{RG}{TEMPLATES}/orders/order1", ARM_API), 201),
            ("GET", q(f"{OPS}/operations/lro_create_aao", ARM_API), 200),
            ("GET", q(f"{OPS}/operations/lro_create_aao", ARM_API), 200),
            ("GET", q(f"{RG}{TEMPLATES}/orders/order1", ARM_API), 200),
        ),
    ),
    Scenario(
        "Azure_ResourceManager_OperationTemplates_Lro_export",
        (
            Call(
                "POST",
                f"{RG}{TEMPLATES}/orders/order1/export",
                ARM_API,
                {"content": "order1,product1,1"},
                body={"format": "csv"},
            ),
        ),
        (
            ("POST", q(f"{RG}{TEMPLATES}/orders/order1/export", ARM_API), 202),
            ("GET", q(f"{OPS}/operations/lro_post_aao", ARM_API), 200),
            ("GET", q(f"{OPS}/operations/lro_post_aao", ARM_API), 200),
            ("GET", q(f"{OPS}/operations/lro_post_location", ARM_API), 200),  # POST: Location
        ),
    ),
    Scenario(
        "Azure_ResourceManager_OperationTemplates_Lro_delete",
        (Call("DELETE", f"{RG}{TEMPLATES}/orders/order1", ARM_API, None),),
        (
            ("DELETE", q(f"{RG}{TEMPLATES}/orders/order1", ARM_API), 202),
            ("GET", q(f"{OPS}/operationResults/lro_delete_location", ARM_API), 202),
            ("GET", q(f"{OPS}/operationResults/lro_delete_location", ARM_API), 204),
        ),
    ),
    Scenario(
        "Azure_ResourceManager_OperationTemplates_Lro_exportArray",
        (
            Call(
                "POST",
                f"{SUB}{TEMPLATES}/exportArray",
                ARM_API,
                [{"content": "order1,product1,1"}, {"content": "order2,product2,2"}],
                body={"format": "csv"},
            ),
        ),
        (
            ("POST", q(f"{SUB}{TEMPLATES}/exportArray", ARM_API), 202),
            ("GET", q(f"{OPS}/operations/lro_exportarray_aao", ARM_API), 200),
            ("GET", q(f"{OPS}/operations/lro_exportarray_aao", ARM_API), 200),
            ("GET", q(f"{OPS}/operations/lro_exportarray_location", ARM_API), 200),
        ),
    ),
    Scenario(
        "Azure_ResourceManager_OperationTemplates_LroPaging_postPagingLro",
        (
            Call(
                "POST",
                f"{RG}{TEMPLATES}/products/default/postPagingLro",
                ARM_API,
                PRODUCTS_PAGE1,
                pages=(PRODUCTS_PAGE2,),
            ),
        ),
        (
            ("POST", q(f"{RG}{TEMPLATES}/products/default/postPagingLro", ARM_API), 202),
            ("GET", q(f"{OPS}/operations/lro_paging_post_location", ARM_API), 202),
            ("GET", q(f"{OPS}/operations/lro_paging_post_location", ARM_API), 200),
            ("GET", q(f"{OPS}/operations/lro_paging_post_location/nextPage", ARM_API), 200),
        ),
    ),
    # Large polling URLs (two 6 KiB query strings).
    Scenario(
        "Azure_ResourceManager_LargeHeader_LargeHeaders_two6k",
        (
            Call(
                "POST",
                f"{RG}/providers/Azure.ResourceManager.LargeHeader/largeHeaders/header1/two6k",
                ARM_API,
                {"succeeded": True},
            ),
        ),
        (
            (
                "POST",
                q(
                    f"{RG}/providers/Azure.ResourceManager.LargeHeader/largeHeaders/header1/two6k",
                    ARM_API,
                ),
                202,
            ),
            ("GET", q(f"{LARGE}/post_aao", ARM_API, f"userContext={SIX_KB}"), 200),
            ("GET", q(f"{LARGE}/post_aao", ARM_API, f"userContext={SIX_KB}"), 200),
            ("GET", q(f"{LARGE}/post_location", ARM_API, f"userContext={SIX_KB}"), 200),
        ),
    ),
    # ARM resources: the "async" operations whose mocks answer the start with the final state.
    Scenario(
        "Azure_ResourceManager_Resources_ExtensionsResources_createOrUpdate",
        tuple(
            Call(
                "PUT",
                f"{scope}{RESOURCES}/extensionsResources/extension",
                ARM_API,
                extension(scope),
                body={"properties": {"description": "valid"}},
            )
            for scope in EXTENSION_SCOPES
        ),
        tuple(
            ("PUT", q(f"{scope}{RESOURCES}/extensionsResources/extension", ARM_API), 200)
            for scope in EXTENSION_SCOPES
        ),
    ),
    put_done(
        "Azure_ResourceManager_Resources_Nested_createOrReplace",
        NESTED,
        ARM_API,
        {"properties": {"description": "valid"}},
        nested_resource(VALID),
    ),
    put_done(
        "Azure_ResourceManager_Resources_Nested_update",
        NESTED,
        ARM_API,
        {"properties": {"description": "valid2"}},
        nested_resource(VALID2),
        method="PATCH",
    ),
    Scenario(
        "Azure_ResourceManager_Resources_Nested_delete",
        (Call("DELETE", NESTED, ARM_API, None),),
        (("DELETE", q(NESTED, ARM_API), 204),),
    ),
    put_done(
        "Azure_ResourceManager_Resources_Singleton_createOrUpdate",
        SINGLETON,
        ARM_API,
        {"location": "eastus", "properties": {"description": "valid"}},
        {
            **arm(
                SINGLETON,
                "Azure.ResourceManager.Resources/singletonTrackedResources",
                VALID,
                location="eastus",
            ),
            "systemData": SYSTEM_DATA,
        },
    ),
    put_done(
        "Azure_ResourceManager_Resources_TopLevel_createOrReplace",
        TOP,
        ARM_API,
        {"location": "eastus", "properties": {"description": "valid"}},
        top_resource(VALID),
    ),
    put_done(
        "Azure_ResourceManager_Resources_TopLevel_update",
        TOP,
        ARM_API,
        {"properties": {"description": "valid2"}},
        top_resource(VALID2),
        method="PATCH",
    ),
    Scenario(
        "Azure_ResourceManager_Resources_TopLevel_delete",
        (Call("DELETE", TOP, ARM_API, None),),
        (("DELETE", q(TOP, ARM_API), 204),),
    ),
    # ARM multi-service clients: createOrUpdate answered with the final 200.
    put_done(
        "Azure_ResourceManager_MultiService_Compute_VirtualMachines_createOrUpdate",
        f"{SERVICE}/Microsoft.Compute/virtualMachines/vm1",
        "2025-04-01",
        {"location": "eastus", "properties": {}},
        arm(
            f"{SERVICE}/Microsoft.Compute/virtualMachines/vm1",
            "Microsoft.Compute/virtualMachines",
            {"provisioningState": "Succeeded"},
            location="eastus",
        ),
    ),
    put_done(
        "Azure_ResourceManager_MultiService_ComputeDisk_Disks_createOrUpdate",
        f"{SERVICE}/Microsoft.Compute/disks/disk1",
        "2025-01-02",
        {"location": "eastus", "properties": {}},
        arm(
            f"{SERVICE}/Microsoft.Compute/disks/disk1",
            "Microsoft.Compute/disks",
            {"provisioningState": "Succeeded"},
            location="eastus",
        ),
    ),
    put_done(
        "Azure_ResourceManager_MultiServiceSharedModels_Compute_VirtualMachines_createOrUpdate",
        f"{SERVICE}/Microsoft.Compute/virtualMachinesShared/vm-shared1",
        "2025-05-01",
        {
            "location": "eastus",
            "properties": {
                "metadata": {
                    "createdBy": "user@example.com",
                    "tags": {"environment": "production"},
                }
            },
        },
        arm(
            f"{SERVICE}/Microsoft.Compute/virtualMachinesShared/vm-shared1",
            "Microsoft.Compute/virtualMachinesShared",
            {
                "provisioningState": "Succeeded",
                "metadata": {
                    "createdAt": "2025-01-01T00:00:00Z",
                    "createdBy": "user@example.com",
                    "tags": {"environment": "production"},
                },
            },
            location="eastus",
        ),
    ),
    put_done(
        "Azure_ResourceManager_MultiServiceSharedModels_Storage_StorageAccounts_createOrUpdate",
        f"{SERVICE}/Microsoft.Storage/storageAccounts/account1",
        "2025-02-01",
        {
            "location": "westus",
            "properties": {
                "metadata": {
                    "createdBy": "admin@example.com",
                    "tags": {"department": "engineering"},
                }
            },
        },
        arm(
            f"{SERVICE}/Microsoft.Storage/storageAccounts/account1",
            "Microsoft.Storage/storageAccounts",
            {
                "provisioningState": "Succeeded",
                "metadata": {
                    "createdAt": "2025-01-02T00:00:00Z",
                    "createdBy": "admin@example.com",
                    "tags": {"department": "engineering"},
                },
            },
            location="westus",
        ),
    ),
    put_done(
        "Azure_ResourceManager_MultiServiceOlderVersions_Compute_VirtualMachines_createOrUpdate",
        f"{SERVICE}/Microsoft.Compute/virtualMachinesOld/vm-old1",
        "2024-11-01",
        {"location": "eastus", "properties": {"size": "Standard_D2s_v3"}},
        arm(
            f"{SERVICE}/Microsoft.Compute/virtualMachinesOld/vm-old1",
            "Microsoft.Compute/virtualMachinesOld",
            {"provisioningState": "Succeeded", "size": "Standard_D2s_v3"},
            location="eastus",
        ),
    ),
    put_done(
        "Azure_ResourceManager_MultiServiceOlderVersions_ComputeDisk_Disks_createOrUpdate",
        f"{SERVICE}/Microsoft.Compute/disksOld/disk-old1",
        "2024-03-02",
        {"location": "eastus", "properties": {"diskSizeGB": 128}},
        arm(
            f"{SERVICE}/Microsoft.Compute/disksOld/disk-old1",
            "Microsoft.Compute/disksOld",
            {"provisioningState": "Succeeded", "diskSizeGB": 128},
            location="eastus",
        ),
    ),
]


# -- the driver ----------------------------------------------------------------------------------


def fill(expected: Any, base: str) -> Any:
    """``expected`` with the server's base URL put where the table says ``{base}``."""
    if isinstance(expected, str):
        return expected.replace(BASE, base)
    if isinstance(expected, dict):
        return {key: fill(value, base) for key, value in expected.items()}
    if isinstance(expected, (list, tuple)):
        return [fill(value, base) for value in expected]
    return expected


def read_pages(pipeline: Pipeline, value: Any, limit: int = 10) -> list[Any]:
    """What an SDK's pager does with a paged value: follow ``nextLink`` (bounded)."""
    pages: list[Any] = []
    link = value.get("nextLink") if isinstance(value, dict) else None
    while isinstance(link, str) and link and len(pages) < limit:
        response = pipeline.send("GET", pipeline.origin_policy.check(link))
        response.raise_for_status()
        page = response.json()
        pages.append(page)
        link = page.get("nextLink")
    return pages


@pytest.mark.integration
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_spector_scenario(spector: Any, scenario: Scenario) -> None:
    base = spector.endpoint.rstrip("/")
    clock = FakeClock()
    sent: list[requests.PreparedRequest] = []
    lro_sent: list[requests.PreparedRequest] = []
    policy = PollingPolicy(interval=1.0, max_retries=0)
    with Pipeline(spector.endpoint, polling=policy, clock=clock, sleep=clock.sleep) as pipe:
        pipe.session.hooks["response"].append(lambda r, *args, **kwargs: sent.append(r.request))
        mark = spector.mark()
        for number, call in enumerate(scenario.calls):
            request_id = f"{scenario.name}-{number}"
            first = len(sent)
            operation: Operation[Any] = Operation.start(
                pipe,
                call.method,
                call.path.lstrip("/"),
                params={"api-version": call.api_version, **call.query},
                json=call.body,
                operation_headers={"x-ms-client-request-id": request_id},
            )
            operation.wait_for_completion(timeout=60)
            assert operation.state is OperationState.SUCCEEDED, operation.status
            assert operation.value == fill(call.value, base)
            operation_requests = sent[first:]
            assert all(
                r.headers.get("x-ms-client-request-id") == request_id for r in operation_requests
            ), "the operation's header must travel on its start, every poll and the final GET"
            lro_sent.extend(operation_requests)
            assert read_pages(pipe, operation.value) == fill(list(call.pages), base)
        seen = spector.checkpoint(mark)

    expected = [f"{method} {url} -> {status}" for method, url, status in scenario.requests]
    assert [str(r) for r in seen.requests] == expected
    assert [f"{r.method} {r.path_url}" for r in sent] == [
        f"{r.method} {r.url}" for r in seen.requests
    ], "the server must have seen exactly what lrokit sent"
    assert seen.warnings == []
    assert seen.coverage.get(scenario.name) == "pass", f"spector's verdict: {seen.coverage}"
    spector.record(scenario.name, len(scenario.calls), seen.requests, len(lro_sent))


@pytest.mark.integration
def test_spector_listens_on_loopback_only(spector: Any) -> None:
    """The preload forced 127.0.0.1: no listening socket of the server's port elsewhere."""
    tables = [p for p in ("/proc/net/tcp", "/proc/net/tcp6") if _readable(p)]
    if not tables:
        pytest.skip("no /proc/net/tcp on this system to inspect listening sockets")
    port = f"{spector.port:04X}"
    listening = []
    for table in tables:
        with open(table) as handle:
            for line in handle.read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, local_port = local.rpartition(":")
                if local_port == port and state == "0A":  # 0A: LISTEN
                    listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex


def _readable(path: str) -> bool:
    try:
        with open(path):
            return True
    except OSError:
        return False


_NAMESPACE = re.compile(r"^namespace\s+([\w.]+)\s*;", re.MULTILINE)
_BLOCK = re.compile(r"^(interface\s+(\w+)|\})", re.MULTILINE)
_OPERATION = re.compile(r"^\s*(?:op\s+)?(\w+)\s+is\s+([\w.]+)\s*<", re.MULTILINE)


def lro_scenarios_in_specs(specs: Path) -> set[str]:
    """The names of the specs' operations declared with an LRO template.

    ``X is ...Async<...>`` (ARM) or ``op X is ...LongRunning...<...>`` (Azure.Core); the
    scenario name is the namespace (without ``_Specs_``), the interface and the operation,
    joined by underscores, as spector names them.
    """
    names: set[str] = set()
    for tsp in sorted(specs.glob("azure/**/*.tsp")):
        text = tsp.read_text("utf-8")
        namespace = _NAMESPACE.search(text)
        if namespace is None:
            continue
        prefix = namespace.group(1).removeprefix("_Specs_.").replace(".", "_")
        interfaces = [(m.start(), m.group(2)) for m in _BLOCK.finditer(text)]
        for match in _OPERATION.finditer(text):
            template = match.group(2).rsplit(".", 1)[-1]
            if not (template.endswith("Async") or template.startswith("LongRunning")):
                continue
            # The innermost "interface X {" before the operation, unless a "}" closed it.
            enclosing = [name for start, name in interfaces if start < match.start()]
            interface = enclosing[-1] if enclosing else None
            parts = [prefix, interface, match.group(1)] if interface else [prefix, match.group(1)]
            names.add("_".join(parts))
    return names


@pytest.mark.integration
def test_every_lro_scenario_of_the_specs_is_in_the_table(spector: Any) -> None:
    """A new LRO scenario in the pinned specs needs a row, and every row is a real scenario."""
    table = [s.name for s in SCENARIOS]
    assert len(table) == len(set(table))
    declared = lro_scenarios_in_specs(SPECS)
    known = set(spector.scenario_names())
    assert declared <= known, f"names not derived as spector does: {declared - known}"
    assert set(table) == declared
