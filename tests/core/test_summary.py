"""--faultline-summary: one row per suite, and the replay command of every unexpected failure."""

from __future__ import annotations

import pytest

SUITE = """
import pytest
from pytest_faultline import point

def work():
    point("io")

@pytest.mark.xfail(raises=OSError, strict=True)
def test_buggy_caught(faultline):
    faultline.arm("io", OSError)
    work()

def test_fixed_survives(faultline):
    faultline.arm("io", OSError, times=1)
    with pytest.raises(OSError):
        work()
    work()

def test_no_fault_fired(faultline):
    faultline.arm("io", OSError, after=5)
    work()

def test_plain():
    pass
"""


def test_summary_table_per_project(pytester: pytest.Pytester) -> None:
    project = pytester.mkdir("examples") / "alpha"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'alpha'\n")
    (project / "tests" / "test_alpha.py").write_text(SUITE)
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_unexpected.py").write_text(
        "def test_broken(faultline):\n    faultline.arm('x', ValueError)\n"
        "    from pytest_faultline import point\n    point('x')\n"
    )
    result = pytester.runpytest("--faultline-summary", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*= faultline summary =*",
            "suite * tests * faults * caught * survived * no fault * unexpected",
            "examples/alpha * 3 * 2 * 1 * 1 * 1 * 0",
            "tests * 1 * 1 * 0 * 0 * 0 * 1",
            "unexpected failures under faults (replay each with its command):",
            "  FAILED pytest tests/test_unexpected.py::test_broken --faultline-replay=fl1.*",
        ]
    )


def test_summary_without_faults_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--faultline-summary")
    result.stdout.fnmatch_lines(["*faultline summary*", "no test ran under faults"])


def test_summary_off_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(faultline): pass")
    result = pytester.runpytest()
    result.stdout.no_fnmatch_line("*faultline summary*")


def test_caught_needs_a_fault_and_the_legend_says_what_is_counted(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_faultline import point

        @pytest.mark.xfail(raises=OSError, strict=True)
        def test_caught(faultline):
            faultline.arm("io", OSError)
            point("io")

        @pytest.mark.xfail(raises=OSError, strict=True)
        def test_failed_without_a_fault(faultline):
            faultline.arm("io", OSError, after=5)
            point("io")
            raise OSError("an unrelated crash: no fault fired")

        def test_not_using_faultline():
            pass
        """
    )
    result = pytester.runpytest("--faultline-summary", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "suite * tests * faults * caught * survived * no fault * unexpected",
            ". * 2 * 1 * 1 * 0 * 1 * 0",
            "tests: only tests that used faultline (its fixture, a marker or --faultline); "
            "faults: faults injected",
            "caught: expected failures (xfail) with at least one fault injected; survived: "
            "passed with faults injected; no fault: passed or xfailed, but no fault fired",
        ]
    )
