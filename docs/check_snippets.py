"""Run every ```python block of the documentation as a program of its own.

Each block must be complete (imports included) and finish on its own within the timeout.
Usage, from the repository root, with the interpreter that has lrokit installed:

    python docs/check_snippets.py            # every page
    python docs/check_snippets.py hooks.md   # some pages

It also checks that the statechart shown in ``concepts.md`` is the committed
``statecharts/lifecycle.mmd``. Exits non-zero when a block fails or the statechart differs;
prints the page, the block's first line number and the block's output for each failure.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
STATECHART = DOCS.parent / "statecharts" / "lifecycle.mmd"
TIMEOUT_SECONDS = 60
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
_MERMAID = re.compile(r"^```mermaid\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)


def blocks(page: Path) -> list[tuple[int, str]]:
    """The python blocks of ``page`` with the line number of their first code line."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _FENCE.finditer(text)
    ]


def run(code: str, workdir: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter inside ``workdir``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def statechart_is_current() -> bool:
    """Whether ``concepts.md`` shows exactly the committed Mermaid statechart."""
    shown = _MERMAID.findall((DOCS / "concepts.md").read_text(encoding="utf-8"))
    return shown == [STATECHART.read_text(encoding="utf-8")]


def main(argv: list[str]) -> int:
    """Check the pages named in ``argv`` (all pages when none); returns the exit status."""
    pages = [DOCS / name for name in argv] if argv else sorted(DOCS.glob("*.md"))
    failures = total = 0
    if not argv or "concepts.md" in argv:
        total += 1
        if statechart_is_current():
            print("ok   concepts.md: statechart matches statecharts/lifecycle.mmd")
        else:
            failures += 1
            print("FAIL concepts.md: the mermaid block differs from statecharts/lifecycle.mmd")
    for page in pages:
        for line, code in blocks(page):
            total += 1
            with tempfile.TemporaryDirectory() as workdir:
                result = run(code, workdir)
            if result.returncode != 0:
                failures += 1
                print(f"FAIL {page.name}:{line}\n{result.stdout}{result.stderr}")
            else:
                print(f"ok   {page.name}:{line}")
    print(f"{total - failures}/{total} blocks ran cleanly")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
