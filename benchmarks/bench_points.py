"""Cost of a disarmed fault point against an empty function call, in one process.

Target: ratio <= 1.5. Prints ``point overhead ratio: X``.
"""

from __future__ import annotations

import statistics
import timeit

from pytest_faultline import point

TARGET = 1.5
NUMBER = 1_000_000
REPEAT = 15


def empty(name: str, /, **context: object) -> None:
    return None


def best_of(stmt: str) -> float:
    timer = timeit.Timer(stmt, globals={"point": point, "empty": empty})
    return min(timer.repeat(repeat=REPEAT, number=NUMBER)) / NUMBER


def main() -> None:
    # Interleave the two measurements so drift on a shared machine hits both alike.
    pairs = [(best_of("point('db.write')"), best_of("empty('db.write')")) for _ in range(3)]
    ratio = statistics.median(p / e for p, e in pairs)
    point_ns = statistics.median(p for p, _ in pairs) * 1e9
    empty_ns = statistics.median(e for _, e in pairs) * 1e9
    print(f"disarmed point(): {point_ns:.1f} ns, empty call: {empty_ns:.1f} ns")
    print(f"point overhead ratio: {ratio:.2f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
