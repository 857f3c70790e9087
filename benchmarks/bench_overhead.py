"""What the installed but unused plugin adds to a 2,000-test suite.

Runs a generated suite of 2,000 trivial tests with the plugin loaded and with
``-p no:faultline``, alternating, and compares median wall times.
Target: < 2% slower. Prints ``plugin overhead: X%``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_PERCENT = 2.0
FILES = 20
TESTS_PER_FILE = 100
ROUNDS = 7


def make_suite(root: Path) -> None:
    for f in range(FILES):
        body = "\n".join(
            f"def test_{f}_{t}():\n    assert {t} + 1 > {t}\n" for t in range(TESTS_PER_FILE)
        )
        (root / f"test_gen_{f}.py").write_text(body)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


def run(root: Path, *extra: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *extra],
        cwd=root,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or f"{FILES * TESTS_PER_FILE} passed" not in proc.stdout:
        raise SystemExit(f"generated suite did not pass:\n{proc.stdout[-2000:]}\n{proc.stderr}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_suite(root)
        run(root)  # warm the file system cache and byte-compile
        with_plugin, without = [], []
        for _ in range(ROUNDS):
            with_plugin.append(run(root))
            without.append(run(root, "-p", "no:faultline"))
    on, off = statistics.median(with_plugin), statistics.median(without)
    print(f"{FILES * TESTS_PER_FILE} tests: with plugin {on:.3f} s, without {off:.3f} s (medians)")
    print(f"plugin overhead: {(on / off - 1) * 100:.2f}% (target < {TARGET_PERCENT}%)")


if __name__ == "__main__":
    main()
