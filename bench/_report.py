"""The benchmark report: sections with tables and PASS/MISS checks, as text and as Markdown.

``bench/run_all.py`` builds one :class:`Section` per part of the benchmark, prints them, and
writes them with :func:`write_markdown` (plots are drawn by the sections' ``plot`` callables
with matplotlib's Agg backend). The standalone scripts (``bench/bench_*.py``) share its
plain-text helpers.
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

#: Libraries whose versions the report names (those installed).
VERSIONED = (
    "lrokit",
    "transitions",
    "msgspec",
    "requests",
    "urllib3",
    "httpx",
    "httpcore",
    "azure-core",
    "azure-mgmt-core",
    "google-api-core",
    "protobuf",
    "matplotlib",
)


@dataclass(frozen=True)
class Check:
    """One target: what is compared, the figure, the limit, and whether it holds."""

    what: str
    measured: str
    target: str
    ok: bool

    @property
    def verdict(self) -> str:
        return verdict(self.ok)


@dataclass
class Section:
    """One part of the report."""

    key: str
    title: str
    intro: str = ""  # Markdown: what exactly was measured, and how
    table: list[list[str]] = field(default_factory=list)  # the first row is the header
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # Markdown paragraphs after the table
    plot: Callable[[Path], None] | None = None  # draws the section's PNG at the given path
    image: str | None = None  # the PNG's path relative to the page, once drawn
    skipped: str | None = None  # why the section did not run


def cpu_model() -> str:
    """The CPU's model name where the system says it (Linux), else the platform's word."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def versions() -> str:
    found = []
    for name in VERSIONED:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def machine_lines() -> list[str]:
    """The machine description: interpreter, OS, CPU, memory, library versions."""
    return [
        f"{platform.python_implementation()} {platform.python_version()}"
        f" ({platform.python_compiler()})",
        f"{platform.platform()}",
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, {memory_total()} of memory",
        versions(),
    ]


def print_machine() -> None:
    """The machine description, one indented line each (the reports' header)."""
    for line in machine_lines():
        print(f"  {line}")


# -- measuring ------------------------------------------------------------------------------------


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then keep the garbage collector off for the block, as ``timeit`` does.

    Collector pauses are noise, not the cost of what is timed. The collector is switched
    back on afterwards only if it was on before.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- text --------------------------------------------------------------------------------------


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned plain text (numbers right-aligned)."""
    if not rows:
        return ""
    widths = [max(len(_plain(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            text = _plain(cell)
            numeric = i > 0 and number > 0 and text[:1].isdigit()
            cells.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def us(seconds: float) -> str:
    """Seconds as microseconds with the unit, aligned for the scripts' plain-text columns."""
    return f"{seconds * 1e6:9.2f} us"


def ratio(value: float, floor: float) -> str:
    """``value`` as a multiple of ``floor``, in parentheses (n/a when the floor is not > 0)."""
    return f"({value / floor:5.1f}x)" if floor > 0 else "(  n/a)"


def _plain(cell: str) -> str:
    return cell.replace("`", "").replace("**", "")


def print_section(section: Section) -> None:
    print()
    print(f"== {section.title}")
    if section.skipped:
        print(f"  not measured: {section.skipped}")
        return
    print(text_table(section.table))
    for check in section.checks:
        print(f"  {check.verdict}  {check.what}: {check.measured} (target {check.target})")


# -- Markdown ------------------------------------------------------------------------------------


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    header, *body = rows
    align = ["---"] + ["--:" for _ in header[1:]]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def write_markdown(
    path: Path,
    sections: Sequence[Section],
    *,
    command: str,
    mode: str,
    method: str,
    elapsed: float,
    preamble: str,
) -> None:
    """Write the whole page."""
    checks = [(section, check) for section in sections for check in section.checks]
    missed = [check for _, check in checks if not check.ok]
    out: list[str] = ["# Performance", "", preamble.strip(), ""]
    out += [
        "## This run",
        "",
        f"Generated by `{command}` ({mode} mode, {elapsed:.0f} s).",
        "",
        "The machine (**every absolute number on this page is specific to it**; compare",
        "the ratios, which are measured against baselines in the same run):",
        "",
        *[f"- {line}" for line in machine_lines()],
        "",
        method.strip(),
        "",
        "## Targets",
        "",
    ]
    if checks:
        rows = [["section", "target", "measured", "limit", "result"]]
        rows += [
            [section.title, check.what, check.measured, check.target, f"**{check.verdict}**"]
            for section, check in checks
        ]
        out += [markdown_table(rows), ""]
        summary = (
            "All targets are met in this run."
            if not missed
            else f"{len(missed)} of {len(checks)} targets are missed in this run."
        )
        out += [summary, ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        if section.skipped:
            out += [f"Not measured in this run: {section.skipped}", ""]
            continue
        if section.intro:
            out += [section.intro.strip(), ""]
        if section.table:
            out += [markdown_table(section.table), ""]
        if section.checks:
            out += [
                *[
                    f"- **{c.verdict}** {c.what}: {c.measured} (target {c.target})"
                    for c in section.checks
                ],
                "",
            ]
        if section.image:
            out += [f"![{section.title}]({section.image})", ""]
        for note in section.notes:
            out += [note.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")


# -- plots ----------------------------------------------------------------------------------------


def pyplot() -> object:
    """matplotlib's pyplot with the file-only Agg backend, or None when not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt
