"""Run or check every code sample of the documentation (``README.md`` and ``docs/*.md``).

This is the one implementation: ``tests/test_docs.py`` turns each sample into a test case,
and authors run it directly, from the repository root, with the interpreter that has lrokit
installed::

    python docs/check_snippets.py                       # every page
    python docs/check_snippets.py hooks.md README.md    # some pages

What happens to each fenced block, by its language:

``python``
    Run as a program of its own: a fresh interpreter (``-W error``, so a sample that warns
    fails), in an empty temporary directory, with a timeout of ``TIMEOUT_SECONDS``; it
    passes when it exits with status 0. A block must therefore be complete (imports
    included). Nothing is patched: samples that start the demo service really wait, so
    they keep their durations short. Tracebacks name the page and its line numbers.
``sh``, ``bash``, ``shell``, ``console``
    Every lrokit command in it (``lrokit ...``, ``.venv/bin/lrokit ...``,
    ``python -m lrokit ...``; in ``console`` blocks only the lines after a ``$`` prompt) is
    checked without being run: each command and subcommand it names must exist and each
    ``--option`` it uses must appear in that (sub)command's ``--help``. Other commands
    (``pip install``, ...) are not run.
``mermaid``
    The lifecycle statechart on ``concepts.md`` must be ``statecharts/lifecycle.mmd``, the
    file generated from the transition table (the page includes it with
    ``--8<-- "statecharts/lifecycle.mmd"``, which this checker resolves as the site does).
other languages (``text``, ``json``, ...)
    Shown, not run. Every fence must name its language, so a Python sample cannot escape
    the run by leaving it out.

No block is exempt. Samples that show other libraries for comparison (azure-core,
google-api-core on ``migration.md``) call the small SDKs of ``docs/sample_sdks/``, which is
on the path of every Python sample.

lrokit commands in inline code (`` `lrokit serve --port N` ``) are checked like shell
commands, one check per page.

Exits non-zero when a check fails; prints the page, the block's first line number and the
output of each failure.
"""

from __future__ import annotations

import functools
import html
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
STATECHART = ROOT / "statecharts" / "lifecycle.mmd"
#: The SDKs built on azure-core and google-api-core that the comparison samples call.
SAMPLE_SDKS = DOCS / "sample_sdks"
TIMEOUT_SECONDS = 30
#: How many samples run at once: most of their time is spent waiting on the demo service.
PARALLEL = 6

PYTHON = frozenset({"python"})
SHELL = frozenset({"sh", "bash", "shell", "console"})
SHOWN = frozenset({"text", "json", "toml", "yaml", "ini", "http", "diff", "mermaid"})

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_SNIPPET = re.compile(r'^(?P<indent>[ \t]*)--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$', re.MULTILINE)
_INLINE_CODE = re.compile(r"(?<!`)`(?P<code>[^`\n]+)`(?!`)")
_SUBCOMMAND_LINE = re.compile(r"^ {4}(?P<name>[a-z][a-z0-9-]*)(?: {2,}|$)", re.MULTILINE)
_SUBCOMMAND_BRACES = re.compile(r"\{(?P<names>[a-z][a-z0-9-]*(?:,[a-z][a-z0-9-]*)+)\}")
_SHELL_OPERATOR = re.compile(r"\s(?:&&|\|\||;|\|)\s")


def pages() -> list[Path]:
    """Every page whose samples are checked: ``README.md`` and ``docs/*.md``."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def relative(path: Path) -> str:
    """``path`` relative to the repository root, with ``/`` (as given when outside it)."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: Path
    #: The line number (1-based) of the block's first code line.
    line: int
    #: The fence's language, lower-cased ("" when the fence names none).
    language: str
    #: The block's text, its indentation removed and ``--8<--`` includes resolved.
    code: str
    #: The line number of the closing fence.
    last: int

    @property
    def name(self) -> str:
        """``page:line``, the block's name in reports and test ids."""
        return f"{relative(self.page)}:{self.line}"


def resolve_includes(text: str) -> str:
    """``text`` with each ``--8<-- "path"`` line replaced by that file (repository-relative),
    as ``pymdownx.snippets`` does on the site."""

    def include(match: re.Match[str]) -> str:
        content = (ROOT / match.group("path")).read_text(encoding="utf-8")
        lines = content.splitlines()
        return "\n".join(match.group("indent") + line if line else line for line in lines)

    return _SNIPPET.sub(include, text)


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _OPEN.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        info = opening.group("info").strip()
        language = info.split()[0].lstrip("{.").rstrip("}").lower() if info else ""
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[index + 1 : end]
        ]
        found.append(
            Block(
                page=page,
                line=index + 2,
                language=language,
                code=resolve_includes("\n".join(body) + "\n") if body else "",
                last=end + 1,
            )
        )
        index = end + 1
    return found


def prose(page: Path) -> str:
    """The text of ``page`` outside fenced blocks (fence lines blanked, so lines keep
    their numbers)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    for block in blocks(page):
        for number in range(block.line - 2, min(block.last, len(lines))):
            lines[number] = ""
    return "\n".join(lines)


# -- python blocks -------------------------------------------------------------------------

# Runs the sample as the __main__ module, compiled under the page's path with its own line
# numbers, so a traceback points at the page (and shows the line, when the page is local).
_BOOTSTRAP = """\
import sys, types
path, line = sys.argv[1], int(sys.argv[2])
source = sys.stdin.read()
module = types.ModuleType("__main__")
module.__file__ = path
sys.modules["__main__"] = module
sys.argv = [path]
exec(compile("\\n" * (line - 1) + source, path, "exec"), module.__dict__)
"""


@dataclass(frozen=True)
class Outcome:
    """What a check of one block found."""

    block: Block
    ok: bool
    output: str
    seconds: float = 0.0

    def report(self) -> str:
        """A failure report: the block's name and what it printed."""
        return f"{self.block.name} ({self.block.language}) failed:\n{self.output}"


# Samples run with warnings as errors, but for one that is not lrokit's: google-api-core, which
# the migration page's comparison sample imports, warns on import that it no longer supports
# Python 3.10 (the later -W wins).
WARNINGS = ("-W", "error", "-W", "ignore::FutureWarning:google.api_core._python_version_support")


def run_python(block: Block) -> Outcome:
    """Run a ``python`` block in a fresh interpreter inside an empty temporary directory."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lrokit-docs-") as workdir:
        try:
            result = subprocess.run(
                [sys.executable, *WARNINGS, "-c", _BOOTSTRAP, str(block.page), str(block.line)],
                input=block.code,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
                env=sample_environment(),
            )
        except subprocess.TimeoutExpired as expired:
            output = _text(expired.stdout) + _text(expired.stderr)
            return Outcome(
                block, False, f"{output}\ndid not finish in {TIMEOUT_SECONDS} s", TIMEOUT_SECONDS
            )
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        output += f"\nexit status {result.returncode}"
    return Outcome(block, result.returncode == 0, output, seconds)


def sample_environment() -> dict[str, str]:
    """The environment of a ``python`` sample: this one, with ``SAMPLE_SDKS`` on the path."""
    path = os.pathsep.join(filter(None, [str(SAMPLE_SDKS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def run_all(selected: Iterable[Block], parallel: int = PARALLEL) -> Iterator[Outcome]:
    """Run the ``python`` blocks in ``selected``, ``parallel`` at a time, in order."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        yield from pool.map(run_python, list(selected))


# -- lrokit commands ---------------------------------------------------------------------


@functools.cache
def help_text(path: tuple[str, ...]) -> tuple[int, str]:
    """Exit status and output of ``lrokit *path --help``."""
    result = subprocess.run(
        [sys.executable, "-m", "lrokit", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    return result.returncode, result.stdout + result.stderr


def subcommands(help_output: str) -> frozenset[str]:
    """The subcommand names an argparse ``--help`` lists (none for a leaf command).

    They are in its "positional arguments" section: one per line under the subparsers'
    metavar, or as ``{a,b,c}`` without one (option choices elsewhere do not count).
    """
    section = re.search(r"^positional arguments:\n(?P<body>(?:[ \t]+\S.*\n?)*)", help_output, re.M)
    if section is None:
        return frozenset()
    body = section.group("body")
    names = set(_SUBCOMMAND_LINE.findall(body))
    for group in _SUBCOMMAND_BRACES.findall(body):
        names.update(group.split(","))
    return frozenset(names)


def check_command(arguments: Sequence[str]) -> list[str]:
    """Problems with ``lrokit *arguments`` (empty when every (sub)command and option exists).

    Positional values and option values are not checked: the command is not run.
    """
    path: list[str] = []
    status, output = help_text(())
    if status != 0:
        return [f"`lrokit --help` failed:\n{output}"]
    problems: list[str] = []
    leaf = False
    for argument in arguments:
        if argument.startswith("-"):
            option = argument.split("=", 1)[0]
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", output):
                command = " ".join(["lrokit", *path])
                problems.append(f"`{command}` has no option {option} (see `{command} --help`)")
            continue
        names = subcommands(output)
        if leaf or not names:
            leaf = True  # a positional value of the command
            continue
        if argument not in names:
            command = " ".join(["lrokit", *path])
            problems.append(f"`{command}` has no command {argument!r} (it has {sorted(names)})")
            return problems
        path.append(argument)
        status, output = help_text(tuple(path))
        if status != 0:
            return [*problems, f"`lrokit {' '.join(path)} --help` failed:\n{output}"]
    # A command is needed, except by `lrokit --version`.
    if not path and subcommands(output) and "--version" not in arguments:
        problems.append("no lrokit command named")
    return problems


def _lrokit_arguments(words: Sequence[str]) -> list[str] | None:
    """The arguments of ``words`` when they invoke lrokit, else None."""
    if words and (words[0] == "lrokit" or words[0].endswith("/lrokit")):
        return list(words[1:])
    if (
        len(words) >= 3
        and Path(words[0]).name.startswith("python")
        and words[1:3]
        == [
            "-m",
            "lrokit",
        ]
    ):
        return list(words[3:])
    return None


def _without_redirections(words: Sequence[str]) -> list[str]:
    """``words`` without ``> file``, ``2>&1``, ``<file`` and the like."""
    kept: list[str] = []
    target = False
    for word in words:
        if target:
            target = False
        elif re.fullmatch(r"\d?(?:>>?|<)|&>", word):
            target = True  # the next word is the file
        elif not re.match(r"^(?:\d|&)?[<>]", word):
            kept.append(word)
    return kept


def shell_commands(block: Block) -> list[list[str]]:
    """The lrokit invocations of a shell block, each as its argument list."""
    text = block.code.replace("\\\n", " ")
    commands: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if block.language == "console":
            if not stripped.startswith("$ "):
                continue  # output
            stripped = stripped[2:]
        for segment in _SHELL_OPERATOR.split(f" {stripped} "):
            words = _without_redirections(shlex.split(segment, comments=True))
            arguments = _lrokit_arguments(words)
            if arguments is not None:
                commands.append(arguments)
    return commands


def inline_commands(page: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of every inline code span of ``page`` that is an lrokit command."""
    found = []
    for number, line in enumerate(prose(page).splitlines(), start=1):
        for match in _INLINE_CODE.finditer(line):
            code = match.group("code").strip()
            if re.match(r"^(?:\S*/)?lrokit\s", code):
                found.append((number, code))
    return found


def check_inline(page: Path) -> list[str]:
    """Problems with the lrokit commands in the inline code of ``page``.

    Spans are read as usage lines: ``[--option VALUE]``, ``{a,b}`` and ``a|b`` are fine.
    """
    problems = []
    for number, span in inline_commands(page):
        command = _SHELL_OPERATOR.split(f" {span} ")[0].strip()
        words = re.findall(r"[^\s\[\]{}|,]+", command)
        for problem in check_command(words[1:]):
            problems.append(f"{relative(page)}:{number}: `{command}`: {problem}")
    return problems


def check_shell(block: Block) -> Outcome:
    """Check every lrokit command of a shell block against lrokit's ``--help``."""
    problems = []
    for arguments in shell_commands(block):
        command = shlex.join(["lrokit", *arguments])
        problems += [f"`{command}`: {problem}" for problem in check_command(arguments)]
    return Outcome(block, not problems, "\n".join(problems))


# -- the statechart ------------------------------------------------------------------------


def statechart_problems(page: Path = DOCS / "concepts.md") -> list[str]:
    """Why ``page`` does not show exactly ``statecharts/lifecycle.mmd`` (empty: it does)."""
    shown = [block for block in blocks(page) if block.language == "mermaid"]
    expected = STATECHART.read_text(encoding="utf-8")
    if len(shown) != 1:
        return [f"concepts.md has {len(shown)} mermaid blocks; it shows one, the statechart"]
    if shown[0].code != expected:
        return [
            f"{shown[0].name}: the mermaid block is not statecharts/lifecycle.mmd; include it "
            'with --8<-- "statecharts/lifecycle.mmd" instead of a copy'
        ]
    return []


def rendered_mermaid(page_html: str) -> list[str]:
    """The diagrams of a rendered page: the text of each ``<pre class="mermaid">``."""
    return [
        html.unescape(match)
        for match in re.findall(
            r'<pre class="mermaid"><code>(.*?)</code></pre>', page_html, flags=re.DOTALL
        )
    ]


# -- the command line ----------------------------------------------------------------------


def fence_problems(block: Block) -> list[str]:
    """A fence without a language, or with one this checker does not know."""
    if block.language in PYTHON | SHELL | SHOWN:
        return []
    return [
        f"{block.name}: fence language {block.language!r} is not one this checker knows "
        f"(run: python; checked: {', '.join(sorted(SHELL))}; shown: {', '.join(sorted(SHOWN))})"
    ]


def main(argv: list[str]) -> int:
    """Check the pages named in ``argv`` (all pages when none); returns the exit status."""
    chosen = (
        [ROOT / name if (ROOT / name).is_file() else DOCS / name for name in argv]
        if argv
        else pages()
    )
    failures = total = 0

    def record(name: str, problems: Sequence[str]) -> None:
        nonlocal failures, total
        total += 1
        if problems:
            failures += 1
            print(f"FAIL {name}\n" + "\n".join(problems), flush=True)
        else:
            print(f"ok   {name}", flush=True)

    if DOCS / "concepts.md" in chosen:
        record("concepts.md: statechart is statecharts/lifecycle.mmd", statechart_problems())
    python_blocks = []
    for page in chosen:
        for block in blocks(page):
            if block.language in PYTHON:
                python_blocks.append(block)
            elif block.language in SHELL and shell_commands(block):
                outcome = check_shell(block)
                record(f"{block.name} (lrokit commands)", [] if outcome.ok else [outcome.output])
            else:
                problems = fence_problems(block)
                if problems:
                    record(block.name, problems)
        if inline_commands(page):
            record(f"{relative(page)} (lrokit commands in the text)", check_inline(page))
    for outcome in run_all(python_blocks):
        record(
            f"{outcome.block.name} ({outcome.seconds:.1f} s)",
            [] if outcome.ok else [outcome.output],
        )
    print(f"{total - failures}/{total} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
