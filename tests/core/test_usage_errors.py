"""Bad input is said once, in one format: what was wrong and how to fix it, no traceback, no
replay command (there is nothing to replay)."""

from __future__ import annotations

import pytest

from pytest_faultline import Faultline, FaultlineError, actions


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'clock_jump", at="app.tick", seconds=-1',
            "ScenarioError: faultline scenario 'clock_jump': seconds must be a number > 0 (how "
            "far the clock jumps when 'app.tick' is reached), got -1 (in @pytest.mark.faultline "
            "on test_bad.py::test_it)",
        ),
        (
            'delayed_cleanup", target="os:getcwd", seconds=-3',
            "ScenarioError: faultline scenario 'delayed_cleanup': defer('os:getcwd'): seconds "
            "must be a number > 0 (seconds of the test's clock), got -3 (in "
            "@pytest.mark.faultline on test_bad.py::test_it)",
        ),
        (
            'partial_read", max_bytes=0',
            "ScenarioError: faultline scenario 'partial_read': short_reads(max_bytes) must be a "
            "whole number >= 1, got 0 (in @pytest.mark.faultline on test_bad.py::test_it)",
        ),
        (
            'thread_preemption", runs=0',
            "ScenarioError: *runs*",
        ),
        (
            'lock_ordr"',
            "ScenarioError: unknown faultline scenario 'lock_ordr'. Did you mean 'lock_order'?*",
        ),
        (
            'my_scenario", limit=-1',
            "ScenarioError: faultline scenario 'my_scenario': limit must be >= 0, got -1 (in "
            "@pytest.mark.faultline on test_bad.py::test_it)",
        ),
    ],
)
def test_a_marker_usage_error_is_said_once(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makeconftest(
        """
        from pytest_faultline import FaultlineError, scenario

        @scenario("my_scenario")
        def my_scenario(faultline, limit: int = 0):
            # A user's scenario refuses a value the way the built-ins do: a FaultlineError.
            if limit < 0:
                raise FaultlineError(f"limit must be >= 0, got {limit}")
        """
    )
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.faultline("{marker})
        def test_it():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([message])
    assert out.count("ScenarioError:") == 2  # the error section and the short summary line
    assert "During handling of the above exception" not in out
    assert "Traceback" not in out
    assert "replay:" not in out
    assert "--faultline-replay" not in out


def test_imperative_apply_raises_the_same_usage_error(faultline: Faultline) -> None:
    with pytest.raises(FaultlineError, match=r"^faultline scenario 'clock_jump': seconds must"):
        faultline.apply("clock_jump", at="eco.tick", seconds=-1)


def test_unknown_session_scenario_is_one_error_at_start(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("\n".join(f"def test_{i}(): pass\n" for i in range(5)))
    result = pytester.runpytest("--faultline=partial_read,nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-faultline: --faultline: unknown faultline scenario 'nope'.*"]
    )
    assert result.stderr.str().count("unknown faultline scenario") == 1
    result.stdout.fnmatch_lines(["*no tests ran*"])  # not one error per test


def test_unknown_session_scenario_under_xdist_is_one_error(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("\n".join(f"def test_{i}(): pass\n" for i in range(5)))
    result = pytester.runpytest_subprocess("-n", "2", "--faultline=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().count("unknown faultline scenario 'nope'") == 1
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_session_scenario_from_a_conftest_is_known(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_faultline import scenario

        @scenario("mine")
        def mine(faultline):
            pass
        """
    )
    pytester.makepyfile("def test_x(faultline): assert faultline.scenarios[0][0] == 'mine'")
    pytester.runpytest("--faultline=mine").assert_outcomes(passed=1)


@pytest.mark.parametrize("key", ["faultline_summary", "toxiproxy_skip_unavailable"])
def test_bad_ini_switch_names_its_key_and_file(pytester: pytest.Pytester, key: str) -> None:
    pytester.makeini(f"[pytest]\n{key} = maybe\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: pytest-faultline: '{key}' in tox.ini must be true or false "
            f"(invalid truth value 'maybe')"
        ]
    )


def test_arming_an_action_class_that_needs_arguments_is_a_clear_error(
    faultline: Faultline,
) -> None:
    with pytest.raises(
        FaultlineError,
        match=r"^cannot arm the class Delay: it needs seconds; pass an instance, e\.g\. "
        r"actions\.Delay\(seconds=\.\.\.\)$",
    ):
        faultline.arm("eco.p", actions.Delay)
    with pytest.raises(FaultlineError, match=r"cannot arm the class Call: it needs fn"):
        faultline.arm("eco.p", actions.Call)
    # A class that needs nothing is still accepted as shorthand for an instance.
    faultline.arm("eco.watched", actions.Watch)
    assert faultline.armings("eco.watched")[0].action == actions.Watch()
    faultline.arm("eco.watched", actions.Watch, strict=False)
    from pytest_faultline import point

    point("eco.watched")


def test_a_body_rerunning_scenario_applied_from_the_body_is_refused(
    faultline: Faultline,
) -> None:
    # The body is running: thread_preemption would have nothing to re-run. Say so, not nothing.
    with pytest.raises(
        FaultlineError,
        match=r"^faultline scenario 'thread_preemption': this re-runs the test body, which is "
        r"running already: apply it with the marker \(or --faultline\), or call "
        r"faultline\.explore\(fn, \.\.\.\) on the part to re-run \(in faultline\.apply\(\)\)$",
    ):
        faultline.apply("thread_preemption", runs=5)
