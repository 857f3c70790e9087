"""Under pytest-xdist every worker uses the controller's session seed."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("xdist")


def test_workers_share_the_session_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "\n".join(f"def test_{i}(faultline):\n    faultline.random.random()\n" for i in range(6))
        + "\ndef test_fails(faultline):\n    assert False\n"
    )
    result = pytester.runpytest_subprocess("-n", "2", "--faultline-report=xdist.json")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        ["*faultline (call)*", "replay: pytest *::test_fails --faultline-replay=fl1.*"]
    )
    spread = json.loads(pytester.path.joinpath("xdist.json").read_text())
    assert len(spread["tests"]) == 7

    single = pytester.runpytest_subprocess(
        "-p", "no:xdist", f"--faultline-seed={spread['seed']}", "--faultline-report=one.json"
    )
    single.assert_outcomes(passed=6, failed=1)
    alone = json.loads(pytester.path.joinpath("one.json").read_text())

    def seeds(data: dict[str, Any]) -> dict[str, object]:
        return {t["nodeid"]: t["seed"] for t in data["tests"]}

    assert seeds(spread) == seeds(alone)
