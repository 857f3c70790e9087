"""What importing faultline costs at every pytest start.

Times ``import pytest_faultline.controller`` (loaded by the plugin at every pytest start),
``import pytest_faultline.plugin``, and the plugin with the thread scheduler its
``pytest_configure`` loads, in fresh processes, with pytest already imported (as it is when
pytest loads the plugin). With ``.pyc`` files, as an installed package has them: one warm-up
import per source tree first, and ``PYTHONDONTWRITEBYTECODE`` removed from the environment.

With ``--baseline-src DIR`` (another checkout's ``src``, e.g. from ``git archive``) the processes
alternate between that tree and this one, so drift on a shared machine hits both alike. Prints
the median milliseconds of each and, with a baseline, ``this / baseline``. Asserts nothing.

    python benchmarks/bench_import.py [--runs 21] [--baseline-src /tmp/base/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# The last line is what a pytest start loads in all: the plugin module, and the thread scheduler
# that its pytest_configure loads (so that a test's first exploration does not).
MODULES = (
    "pytest_faultline.controller",
    "pytest_faultline.plugin",
    "pytest_faultline.plugin, pytest_faultline.sched",
)
CODE = (
    "import pytest, time\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "print(time.perf_counter() - t)\n"
)


def import_seconds(src: Path, module: str) -> float:
    """Seconds to import ``module`` from ``src`` in a fresh process that has imported pytest."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="processes per tree and module")
    parser.add_argument("--baseline-src", type=Path, default=None, help="another checkout's src")
    args = parser.parse_args()
    trees = {"this": SRC}
    if args.baseline_src is not None:
        trees = {"baseline": args.baseline_src.resolve(), "this": SRC}
    print(f"Python {sys.version.split()[0]}, {args.runs} processes per tree and module")
    for module in MODULES:
        for src in trees.values():
            import_seconds(src, module)  # writes the .pyc files
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, src in trees.items():
                times[name].append(import_seconds(src, module))
        medians = {name: statistics.median(found) * 1000 for name, found in times.items()}
        shown = ", ".join(f"{name} {ms:.2f} ms" for name, ms in medians.items())
        print(f"import {module}: median {shown}")
        if "baseline" in medians:
            print(f"  this / baseline: {medians['this'] / medians['baseline']:.2f}")


if __name__ == "__main__":
    main()
