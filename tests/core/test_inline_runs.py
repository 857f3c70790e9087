"""Users test their own plugins and fixtures with pytester's in-process runs: two such runs in
one fresh process must both be able to arm actions (modules first imported inside a run are
dropped when it ends, so the plugin must not import its controller lazily)."""

from __future__ import annotations

import pytest

INNER = """
from pytest_faultline import actions, point

def test_arms(faultline):
    faultline.arm("p", actions.Return("hit"))
    assert point("p") == "hit"
"""


def test_two_inline_runs_in_a_fresh_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_outer=f"""
        import pytest

        INNER = {INNER!r}

        @pytest.mark.parametrize("run", [1, 2])
        def test_inline(pytester, run):
            pytester.makepyfile(test_inner=INNER)
            pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
        """
    )
    result = pytester.runpytest_subprocess("-p", "pytester", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
