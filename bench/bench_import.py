"""``import lrokit`` next to ``import requests``, in the same run: what lrokit adds to start-up.

Run ``python bench/bench_import.py`` (full, under a minute) or ``--quick`` (a few seconds).
Each repeat starts three fresh interpreters in turn (``python -c pass``, ``python -c "import
requests"``, ``python -c "import lrokit"``) and times each from start to exit, so the figures
are whole-process wall times; the medians are printed. lrokit imports requests itself, so the
difference between the last two is what lrokit's own modules and its other dependencies
(msgspec, transitions) cost. Target: ``import lrokit`` at most ``import requests`` plus 30 ms
(sync programs do not pay for asyncio: the async names load on first use).

Byte-code is cached for every module alike: the interpreters write and read it under a
temporary ``-X pycache_prefix`` (filled by a warm-up run of each command), whatever
``PYTHONDONTWRITEBYTECODE`` says and whether or not the installed packages came with it.
``--check`` exits with 1 on a MISS. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _report import print_machine, verdict

#: lrokit's source tree, put on the path (also of the timed interpreters) when the checkout
#: is not installed.
SOURCE = None if importlib.util.find_spec("lrokit") else Path(__file__).resolve().parents[1] / "src"


#: How much ``import lrokit`` may add to ``import requests`` (seconds).
TARGET_EXTRA = 0.030
COMMANDS = {
    "python -c pass": "pass",
    "import requests": "import requests",
    "import lrokit": "import lrokit",
}


def time_once(code: str, environment: dict[str, str]) -> float:
    """Wall seconds of one fresh interpreter running ``code``, from start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=environment, check=True)
    return time.perf_counter() - started


def measure(repeats: int) -> dict[str, float]:
    """The median wall time of each command, over ``repeats`` interleaved repeats."""
    with tempfile.TemporaryDirectory(prefix="lrokit-bench-import-") as cache:
        environment = {
            name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"
        }
        environment["PYTHONPYCACHEPREFIX"] = cache
        if SOURCE is not None:
            environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(SOURCE), environment.get("PYTHONPATH")])
            )
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for code in COMMANDS.values():  # the warm-up writes the byte-code cache
            time_once(code, environment)
        for _ in range(repeats):
            for name, code in COMMANDS.items():
                times[name].append(time_once(code, environment))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the medians and the check; the exit status (1 on a MISS with ``--check``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a few seconds)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 30
    print(f"lrokit import benchmark ({'quick' if args.quick else 'full'} mode, {repeats} repeats)")
    print_machine()
    medians = measure(repeats)
    for name, seconds in medians.items():
        print(f"  {name:<16} {seconds * 1000:7.1f} ms  (median wall time of a whole process)")
    extra = medians["import lrokit"] - medians["import requests"]
    ok = extra <= TARGET_EXTRA
    print(
        f"  import lrokit - import requests: {extra * 1000:+.1f} ms"
        f" (target: at most +{TARGET_EXTRA * 1000:.0f} ms)  {verdict(ok)}"
    )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
