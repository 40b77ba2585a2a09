"""Every code sample of the documentation runs or is checked, so the docs cannot rot.

The blocks of ``README.md`` and ``docs/*.md`` are found by ``docs/check_snippets.py``, the one
implementation of the rules (its docstring has them, and it runs stand-alone for authors):

- ``test_python_sample``: one case per ``python`` block, named ``page:line``. The block runs
  as a program of its own (a fresh interpreter with ``-W error``, an empty temporary
  directory, a timeout of ``check_snippets.TIMEOUT_SECONDS``) and must exit with status 0.
  Nothing is patched, sleeps included: samples that start the demo service really wait and
  keep their durations short. So that the module stays well under a minute on 2 cores, the
  first case starts every selected sample, ``check_snippets.PARALLEL`` at a time (they
  spend most of their time waiting); each case then reports its own block.
- ``test_shell_sample``: every lrokit command in a shell block names commands and options
  that exist (checked against ``--help``; nothing is run).
- ``test_lrokit_commands_in_text``: the same for lrokit commands in inline code.
- No block is exempt: the migration page's azure-core and google-api-core samples run too,
  against the sample SDKs of ``docs/sample_sdks/`` (checked in ``test_sample_sdks.py``).
- The statechart on the concepts page is ``statecharts/lifecycle.mmd`` (generated from the
  transition table), included rather than copied, and renders as a Mermaid diagram with the
  site's own Markdown configuration from ``mkdocs.yml``.
"""

from __future__ import annotations

import os
import pkgutil
import re
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ci_policy import missing
from lrokit._statechart import render_mermaid
from suite_helpers import load_checker

ROOT = Path(__file__).resolve().parents[1]


snippets = load_checker()

BLOCKS = [block for page in snippets.pages() for block in snippets.blocks(page)]
PYTHON_BLOCKS = [block for block in BLOCKS if block.language in snippets.PYTHON]
SHELL_BLOCKS = [
    block for block in BLOCKS if block.language in snippets.SHELL and snippets.shell_commands(block)
]
PAGES_WITH_COMMANDS = [page for page in snippets.pages() if snippets.inline_commands(page)]


def _name(block: Any) -> str:
    return str(block.name)


@pytest.fixture(scope="module")
def started_samples(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Any]]]:
    """Every python sample selected in this session, started together (bounded)."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_python_sample"
        and item.module is sys.modules[__name__]
    ]
    pool = ThreadPoolExecutor(max_workers=snippets.PARALLEL, thread_name_prefix="docs-sample")
    futures = {block.name: pool.submit(snippets.run_python, block) for block in selected}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


#: Pages whose samples need the temporal extra (they start a Temporal dev server of their
#: own): skipped without it on a developer's machine, failed in CI (ci_policy.missing).
NEEDS_TEMPORAL = frozenset({"fleet.md"})


def _has_temporal() -> bool:
    try:
        from lrokit.temporal import find_temporal

        find_temporal()
    except (ImportError, FileNotFoundError):
        return False
    return True


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_name)
def test_python_sample(block: Any, started_samples: dict[str, Future[Any]]) -> None:
    if Path(block.page).name in NEEDS_TEMPORAL and not _has_temporal():
        missing(f"{block.name} needs the temporal extra (pip install -e '.[temporal]')")
    future = started_samples.get(block.name)
    outcome = future.result() if future is not None else snippets.run_python(block)
    assert outcome.ok, outcome.report()


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=_name)
def test_shell_sample(block: Any) -> None:
    outcome = snippets.check_shell(block)
    assert outcome.ok, outcome.report()


@pytest.mark.parametrize("page", PAGES_WITH_COMMANDS, ids=snippets.relative)
def test_lrokit_commands_in_text(page: Path) -> None:
    problems = snippets.check_inline(page)
    assert not problems, "\n".join(problems)


def test_command_check_catches_what_does_not_exist() -> None:
    assert snippets.check_command(["statechart", "--format", "mermaid"]) == []
    assert snippets.check_command(["token", "inspect", "TOKEN"]) == []
    assert snippets.check_command(["statechart", "--colour"]) == [
        "`lrokit statechart` has no option --colour (see `lrokit statechart --help`)"
    ]
    (problem,) = snippets.check_command(["token", "inspekt", "TOKEN"])
    assert problem.startswith("`lrokit token` has no command 'inspekt'")
    assert snippets.check_command(["--help"]) == ["no lrokit command named"]
    assert snippets.check_command(["--version"]) == []


def test_every_python_fence_is_collected() -> None:
    """The block parser finds every ```python fence (a parser bug must not hide samples)."""
    for page in snippets.pages():
        text = page.read_text(encoding="utf-8")
        fences = len(re.findall(r"^[ \t]*```python\b", text, flags=re.MULTILINE))
        found = [block for block in snippets.blocks(page) if block.language == "python"]
        assert len(found) == fences, snippets.relative(page)
    assert len(PYTHON_BLOCKS) >= 50


def test_every_fence_names_a_known_language() -> None:
    problems = [problem for block in BLOCKS for problem in snippets.fence_problems(block)]
    assert not problems, "\n".join(problems)


# -- the statechart ------------------------------------------------------------------------

CONCEPTS = ROOT / "docs" / "concepts.md"
STATECHART = ROOT / "statecharts" / "lifecycle.mmd"


def test_concepts_page_includes_the_generated_statechart() -> None:
    assert STATECHART.read_text(encoding="utf-8") == render_mermaid()
    assert '--8<-- "statecharts/lifecycle.mmd"' in CONCEPTS.read_text(encoding="utf-8")
    assert snippets.statechart_problems() == []


def test_statechart_check_fails_on_a_copy_that_differs(tmp_path: Path) -> None:
    page = tmp_path / "concepts.md"
    stale = render_mermaid().replace("Running --> Canceled : cancel\n", "")
    page.write_text(f"# Concepts\n\n```mermaid\n{stale}```\n", encoding="utf-8")
    (problem,) = snippets.statechart_problems(page)
    assert "is not statecharts/lifecycle.mmd" in problem
    page.write_text('```mermaid\n--8<-- "statecharts/lifecycle.mmd"\n```\n', encoding="utf-8")
    assert snippets.statechart_problems(page) == []


def _site_markdown() -> Any:
    """A Markdown converter with the extensions and settings of ``mkdocs.yml``."""
    # Both come with pymdown-extensions, in the test extra.
    import markdown
    import yaml

    class Loader(yaml.SafeLoader):
        """Reads mkdocs.yml's tags as mkdocs does, for the settings used here."""

    def python_name(loader: Any, suffix: str, node: Any) -> Any:
        return pkgutil.resolve_name(suffix)

    def relative(loader: Any, node: Any) -> str:
        assert loader.construct_scalar(node) == "$config_dir"
        return str(ROOT)

    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", python_name)
    # The call that silences the theme's banner (see the next test): not a Markdown setting.
    Loader.add_multi_constructor("tag:yaml.org,2002:python/object/apply:", lambda *_: None)
    Loader.add_constructor("!relative", relative)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    names: list[str] = []
    settings: dict[str, Any] = {}
    for entry in config["markdown_extensions"]:
        if isinstance(entry, str):
            names.append(entry)
        else:
            ((name, options),) = entry.items()
            names.append(name)
            settings[name] = options or {}
    return markdown.Markdown(extensions=names, extension_configs=settings)


def test_reading_mkdocs_yml_as_mkdocs_does_silences_the_theme_banner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain ``mkdocs build`` needs no hidden variable: reading the file sets it."""
    import yaml

    class Loader(yaml.Loader):  # mkdocs reads its configuration with PyYAML's full Loader
        """The tags mkdocs adds, as placeholders."""

    Loader.add_constructor("!relative", lambda loader, node: str(ROOT))
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "")  # restored after the test, set or not
    monkeypatch.delenv("NO_MKDOCS_2_WARNING")
    yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    assert os.environ.get("NO_MKDOCS_2_WARNING")


def test_concepts_page_renders_the_statechart_as_mermaid() -> None:
    """With the site's configuration, the page shows the generated chart as a diagram."""
    converter = _site_markdown()
    page_html = converter.convert(CONCEPTS.read_text(encoding="utf-8"))
    assert snippets.rendered_mermaid(page_html) == [STATECHART.read_text(encoding="utf-8")]
