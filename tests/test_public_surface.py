"""What a newcomer meets first: a light ``import lrokit``, names that show as ``lrokit.X``,
one version, ``lrokit --version``, the operation's id and polling URL, and a token kind that
is the same whether the class runs in a script or is imported from it."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import pytest
import responses

import lrokit
from ci_policy import missing
from lrokit import Operation, Pipeline
from lrokit._cli import main

HOST = "https://svc.example.com"


def run_python(code: str, *, cwd: Path | None = None, args: tuple[str, ...] = ()) -> str:
    """Run ``code`` (or, with ``args``, a command line) in a fresh interpreter; its stdout."""
    command = [sys.executable, *args] if args else [sys.executable, "-c", code]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


# -- the import ------------------------------------------------------------------------------


def test_import_lrokit_leaves_asyncio_unloaded_until_an_async_name_is_used() -> None:
    out = run_python(
        "import sys, lrokit\n"
        "print('asyncio' in sys.modules, 'httpx' in sys.modules)\n"
        "lrokit.wait_all([])\n"
        "print('asyncio' in sys.modules)\n"
        "from lrokit import AsyncOperation\n"
        "print('asyncio' in sys.modules, AsyncOperation.__name__)\n"
    )
    assert out.split() == ["False", "False", "False", "True", "AsyncOperation"]


@pytest.mark.parametrize("name", sorted(lrokit._ASYNC_NAMES))
def test_each_async_name_loads_on_first_use(name: str) -> None:
    out = run_python(
        f"import lrokit, sys\nvalue = getattr(lrokit, {name!r})\n"
        f"print(value is getattr(lrokit, {name!r}), {name!r} in vars(lrokit))\n"
    )
    assert out.split() == ["True", "True"]


def test_every_exported_name_resolves_and_dir_lists_them_all() -> None:
    for name in lrokit.__all__:
        assert getattr(lrokit, name) is not None
    assert set(lrokit.__all__) <= set(dir(lrokit))
    assert sorted(set(lrokit.__all__)) == sorted(lrokit.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = lrokit.NoSuchName  # type: ignore[attr-defined]
    assert not hasattr(lrokit, "NoSuchName")


TYPED = """\
import lrokit
from lrokit import AsyncOperation, async_wait_all


async def wait(operation: AsyncOperation[int]) -> None:
    result = await async_wait_all([operation])
    reveal_type(result.done)
    lrokit.AsyncOperaton  # a typo
"""


def test_type_checkers_see_the_lazy_names_and_flag_unknown_ones(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        missing("mypy is not installed (the lint extra)")
    (tmp_path / "typed.py").write_text(TYPED)
    # In a process of its own: mypy raises the interpreter's recursion limit.
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(tmp_path / "typed.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = checked.stdout
    # Older mypy releases (1.10) spell builtins as "builtins.list"; the type is the contract.
    builtin = r"(builtins\.)?"
    revealed = (
        rf'Revealed type is "{builtin}list\[lrokit\._async\.AsyncOperation\[{builtin}int\]\]"'
    )
    assert re.search(revealed, out), out
    assert 'Module has no attribute "AsyncOperaton"' in out
    assert checked.returncode == 1
    assert out.count("error:") == 1, out


# -- public names look public ----------------------------------------------------------------


def exported_objects() -> list[tuple[str, Any]]:
    """The exported classes and functions (constants and aliases have no module of their own)."""
    return [
        (name, getattr(lrokit, name))
        for name in lrokit.__all__
        if inspect.isclass(getattr(lrokit, name)) or inspect.isfunction(getattr(lrokit, name))
    ]


@pytest.mark.parametrize(("name", "obj"), exported_objects())
def test_every_exported_class_and_function_shows_as_lrokit(name: str, obj: Any) -> None:
    assert obj.__module__ == "lrokit"
    assert obj.__qualname__ == name


@pytest.mark.parametrize(("name", "obj"), [e for e in exported_objects() if inspect.isclass(e[1])])
def test_annotations_of_exported_classes_still_resolve(name: str, obj: Any) -> None:
    # They were written in the private modules: typing and msgspec must still read them.
    hints = typing.get_type_hints(obj, include_extras=True)
    assert set(inspect.get_annotations(obj)) <= set(hints)
    if issubclass(obj, msgspec.Struct):
        assert msgspec.inspect.type_info(obj) is not None


def test_a_struct_shown_as_lrokit_still_converts() -> None:
    error = msgspec.convert(
        {"code": "Conflict", "details": [{"code": "Inner"}]}, lrokit.ServiceError
    )
    assert error.details[0].code == "Inner"


def test_exported_names_are_most_of_all() -> None:
    # Only the two constants (a tuple, a frozenset) and __version__ are not classes or
    # functions: the parametrized test above covers every other name.
    assert len(exported_objects()) == len(lrokit.__all__) - 3


def test_reprs_and_tracebacks_name_the_public_module() -> None:
    assert repr(Operation) == "<class 'lrokit.Operation'>"
    assert repr(Operation[int]) == "lrokit.Operation[int]"
    finished = subprocess.run(
        [sys.executable, "-c", "import lrokit\nraise lrokit.InvalidTokenError('bad token')"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.stderr.strip().splitlines()[-1] == "lrokit.InvalidTokenError: bad token"


# -- one version -----------------------------------------------------------------------------


def test_the_package_metadata_reads_the_one_version() -> None:
    assert metadata.version("lrokit") == lrokit.__version__


def test_version_option_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"lrokit {lrokit.__version__}\n"


def test_version_option_of_the_installed_command() -> None:
    out = run_python("", args=("-m", "lrokit", "--version"))
    assert out == f"lrokit {lrokit.__version__}\n"


# -- the operation's id and polling URL ------------------------------------------------------


def test_operation_id_and_polling_url_are_properties(pipeline: Pipeline) -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(
            f"{HOST}/jobs",
            status=202,
            json={"status": "Running"},
            headers={"Operation-Location": "/operations/42?api-version=1"},
        )
        operation = Operation.start(pipeline, "POST", "jobs")
    assert operation.polling_url == f"{HOST}/operations/42?api-version=1"
    assert operation.operation_id == operation.core.operation_id
    assert operation.operation_id in str(operation.rehydration_token.fields.operation_id)


def test_polling_url_is_none_when_the_start_response_completed(pipeline: Pipeline) -> None:
    with responses.RequestsMock() as rsps:
        rsps.put(f"{HOST}/items/1", status=200, json={"id": "1", "status": "Succeeded"})
        operation = Operation.start(pipeline, "PUT", "items/1")
    assert operation.has_completed
    assert operation.polling_url is None


def test_prepared_idempotent_start_sends_the_operation_id(pipeline: Pipeline) -> None:
    operation = Operation.prepare(pipeline, "POST", "jobs", idempotent=True)
    with responses.RequestsMock() as rsps:
        rsps.post(
            f"{HOST}/jobs",
            status=202,
            headers={"Operation-Location": "/operations/7"},
            match=[responses.matchers.header_matcher({"Operation-Id": operation.operation_id})],
        )
        operation.send_start()
    assert operation.polling_url == f"{HOST}/operations/7"


# -- a stable token kind ---------------------------------------------------------------------

SCRIPT = '''\
import sys

from lrokit import Operation, Pipeline


class ExportReport(Operation[dict]):
    """Defined in a script, without token_kind."""


if __name__ == "__main__":
    pipeline = Pipeline("https://svc.example.com/")
    operation = ExportReport.from_monitor(pipeline, "https://svc.example.com/operations/1")
    print(ExportReport.kind())
    print(operation.rehydration_token)
'''

RESUME = """\
import sys

from lrokit import Pipeline
from {module} import ExportReport

operation = ExportReport.rehydrate(Pipeline("https://svc.example.com/"), sys.stdin.read())
print(ExportReport.kind(), operation.state.value)
"""


def resume_in_importer(tmp_path: Path, module: str, token: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-c", RESUME.format(module=module)],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.strip()


def test_a_token_written_by_a_script_resumes_where_the_script_is_imported(
    tmp_path: Path,
) -> None:
    (tmp_path / "report_tool.py").write_text(SCRIPT)
    kind, token = run_python("", cwd=tmp_path, args=("report_tool.py",)).split()
    assert kind == "report_tool.ExportReport"
    assert resume_in_importer(tmp_path, "report_tool", token) == f"{kind} Running"


def test_a_script_inside_a_package_is_named_within_it(tmp_path: Path) -> None:
    package = tmp_path / "reports"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text(SCRIPT)
    # Run by its path, and as a module: the kind is the module the importer names.
    by_path, token = run_python("", cwd=tmp_path, args=(str(package / "tool.py"),)).split()
    as_module, _ = run_python("", cwd=tmp_path, args=("-m", "reports.tool")).split()
    assert by_path == as_module == "reports.tool.ExportReport"
    assert resume_in_importer(tmp_path, "reports.tool", token) == f"{by_path} Running"


def test_a_class_without_a_file_keeps_the_main_name() -> None:
    out = run_python(
        "from lrokit import Operation\n"
        "class Interactive(Operation[dict]):\n    pass\n"
        "print(Interactive.kind())\n"
    )
    assert out.strip() == "__main__.Interactive"


def test_plain_operations_keep_the_kind_of_released_tokens() -> None:
    assert lrokit.Operation.kind() == "lrokit._sync.Operation"
    assert lrokit.AsyncOperation.kind() == lrokit.Operation.kind()
