"""Every patch is undone after a failing, erroring or interrupted test."""

from __future__ import annotations

import pytest

TARGETS = """
def send(data):
    return len(data)

class Conn:
    def recycle(self):
        return "recycled"
"""

CONFTEST = """
import pytest
import targets

ORIGINALS = (targets.send, targets.Conn.__dict__["recycle"])

def check():
    from pytest_faultline import _points
    restored = (targets.send, targets.Conn.__dict__["recycle"]) == ORIGINALS
    return f"restored={restored} armed={_points.armed_names()}"

@pytest.fixture
def broken_fixture(faultline):
    faultline.arm("targets:send", ValueError)
    faultline.arm("p.inside", ValueError)
    yield
    raise RuntimeError("teardown blew up")

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    print("AT EXIT", check(), flush=True)
"""

TESTS = """
import pytest
import targets
from conftest import check

def _arm(faultline):
    faultline.arm("targets:send", ValueError)
    faultline.arm("targets:Conn.recycle", ValueError)
    faultline.arm("p.one", ValueError)

def test_fails(faultline):
    _arm(faultline)
    targets.send(b"x")

def test_errors_in_teardown(broken_fixture):
    with pytest.raises(ValueError):
        targets.send(b"x")

def test_after():
    print("AFTER", check())
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(targets=TARGETS)
    pytester.makeconftest(CONFTEST)
    return pytester


def test_patches_undone_after_failing_and_erroring_tests(project: pytest.Pytester) -> None:
    project.makepyfile(test_restore=TESTS)
    result = project.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=2, errors=1)
    result.stdout.fnmatch_lines(["*AFTER restored=True armed=[[]]*"])
    result.stdout.fnmatch_lines(["AT EXIT restored=True armed=[[]]"])


def test_patches_undone_after_keyboard_interrupt(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_interrupt="""
        import targets

        def test_interrupted(faultline):
            faultline.arm("targets:send", ValueError)
            faultline.arm("targets:Conn.recycle", ValueError)
            faultline.arm("p.one", ValueError)
            raise KeyboardInterrupt
        """
    )
    result = project.runpytest_subprocess("-s")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*", "AT EXIT restored=True armed=[[]]"])


def test_patches_undone_when_a_scenario_fails_at_setup(project: pytest.Pytester) -> None:
    project.makeconftest(
        CONFTEST
        + """
from pytest_faultline import scenario

@scenario("half_applied")
def half_applied(faultline):
    faultline.arm("targets:send", ValueError)
    raise RuntimeError("scenario broke after arming")
"""
    )
    project.makepyfile(
        test_setup="""
        import pytest
        from conftest import check

        @pytest.mark.faultline("half_applied")
        def test_x():
            pass

        def test_after():
            print("AFTER", check())
        """
    )
    result = project.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*scenario broke after arming*"])
    result.stdout.fnmatch_lines(["*AFTER restored=True armed=[[]]*"])
