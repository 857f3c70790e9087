"""Options, their precedence, the header, seeds, replay tokens, the cache and the JSON report."""

from __future__ import annotations

import json
import re

import pytest

RANDOM_TEST = """
import pytest
from pytest_faultline import point, actions

def test_draw(faultline):
    faultline.arm("coin", actions.Return("heads"), probability=0.5)
    flips = "".join("H" if point("coin") == "heads" else "T" for _ in range(24))
    print(f"FLIPS={flips} SEED={faultline.seed} FAKE={faultline.fake.name()}")
    assert "FAIL_ON" not in flips
"""


def _flips(result: pytest.RunResult) -> str:
    match = re.search(r"FLIPS=(\S+) SEED=(\d+) FAKE=(.+)", result.stdout.str())
    assert match, result.stdout.str()
    return match.group(0)


def test_header_shows_seed_and_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--faultline-seed=77")
    result.stdout.fnmatch_lines(["faultline: seed=77 (--faultline-seed), backend=embedded"])


def test_seed_makes_faults_and_fake_data_repeat(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(RANDOM_TEST)
    a = _flips(pytester.runpytest("-s", "--faultline-seed=1"))
    b = _flips(pytester.runpytest("-s", "--faultline-seed=1"))
    c = _flips(pytester.runpytest("-s", "--faultline-seed=2"))
    assert a == b
    assert a != c


def test_test_seed_does_not_depend_on_other_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a=RANDOM_TEST,
        test_b="def test_other(faultline):\n    faultline.random.random()\n",
    )
    alone = _flips(pytester.runpytest("-s", "--faultline-seed=9", "test_a.py"))
    together = _flips(pytester.runpytest("-s", "--faultline-seed=9", "test_b.py", "test_a.py"))
    assert alone == together


def test_precedence_cli_over_env_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfaultline_seed = 3\n")
    pytester.makepyfile("def test_x(): pass")
    pytester.runpytest().stdout.fnmatch_lines(["faultline: seed=3 ('faultline_seed' in tox.ini)*"])
    pytester._monkeypatch.setenv("FAULTLINE_SEED", "4")
    pytester.runpytest().stdout.fnmatch_lines(
        ["faultline: seed=4 (the FAULTLINE_SEED environment variable)*"]
    )
    pytester.runpytest("--faultline-seed=5").stdout.fnmatch_lines(
        ["faultline: seed=5 (--faultline-seed)*"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--faultline-seed=abc"],
            "--faultline-seed must be a whole number from 0 to 2**64-1, got 'abc'",
        ),
        (["--faultline-seed=-1"], "--faultline-seed must be a whole number from 0 to 2**64-1*"),
        (["--faultline-runs=0"], "--faultline-runs must be a whole number >= 1, got '0'"),
        (["--faultline-budget=soon"], "--faultline-budget must be a number of seconds > 0*"),
        (
            ["--faultline-backend=docker"],
            "--faultline-backend must be one of embedded, toxiproxy, got 'docker'",
        ),
        (
            ["--toxiproxy-url=localhost"],
            "--toxiproxy-url must look like http://HOST:PORT, got 'localhost'",
        ),
        (["--faultline-strict=maybe"], "--faultline-strict must be true or false, got 'maybe'"),
        (["--faultline-replay=fl1.x"], "--faultline-replay malformed replay token 'fl1.x': *"),
        (["--faultline-replay=nope"], "*must start with 'fl1.'*"),
    ],
)
def test_bad_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-faultline: {message}"])


def test_bad_env_value_names_the_variable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    pytester._monkeypatch.setenv("FAULTLINE_BACKEND", "k8s")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-faultline: the FAULTLINE_BACKEND environment variable must be one of*"]
    )


FAILING = """
import pytest
from pytest_faultline import point, actions

def test_flaky(faultline):
    faultline.arm("coin", actions.Return("heads"), probability=0.5)
    flips = "".join("H" if point("coin") == "heads" else "T" for _ in range(16))
    print("FLIPS=" + flips)
    assert flips.count("H") < 0  # always fails, with the flips in the report
"""


def test_replay_token_reproduces_a_failure_from_another_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flaky=FAILING)
    first = pytester.runpytest("-s", "--faultline-seed=100", "-p", "no:cacheprovider")
    first.assert_outcomes(failed=1)
    flips = re.search(r"FLIPS=(\w+)", first.stdout.str())
    replay = re.search(r"replay: pytest (\S+) --faultline-replay=(\S+)", first.stdout.str())
    assert flips
    assert replay
    assert replay.group(1) == "test_flaky.py::test_flaky"
    # A different session seed: the token's own seed wins, so the run is the same.
    again = pytester.runpytest(
        "-s",
        "--faultline-seed=555",
        "-p",
        "no:cacheprovider",
        replay.group(1),
        f"--faultline-replay={replay.group(2)}",
    )
    again.assert_outcomes(failed=1)
    assert f"FLIPS={flips.group(1)}" in again.stdout.str()
    again.stdout.fnmatch_lines([f"faultline: replaying token {replay.group(2)}"])


def test_replay_token_for_another_test_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(faultline): pass")
    result = pytester.runpytest("--faultline-replay=fl1.5.0badf00d", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*the replay token fl1.5.0badf00d matched no test that ran: it was recorded for a test "
            "whose id hashes to 0badf00d*"
        ]
    )


def test_failing_tokens_are_cached_replayed_first_and_forgotten(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="def test_first(faultline): pass",
        test_b=FAILING,
    )
    first = pytester.runpytest("-s", "--faultline-seed=1")
    first.assert_outcomes(passed=1, failed=1)
    assert "replaying the cached token" not in first.stdout.str()
    flips = re.search(r"FLIPS=(\w+)", first.stdout.str())
    assert flips
    # Next run, another seed: the failing test runs first, under its cached token.
    second = pytester.runpytest("-s", "-v", "--faultline-seed=2", "-p", "no:randomly")
    second.assert_outcomes(passed=1, failed=1)
    assert f"FLIPS={flips.group(1)}" in second.stdout.str()
    second.stdout.fnmatch_lines(
        ["faultline: replaying the cached token of 1 earlier failing test(s) first*"]
    )
    out = second.stdout.str()
    assert out.index("test_b.py::test_flaky") < out.index("test_a.py::test_first")
    # --faultline-cache-clear forgets it: collection order decides again (pytest-randomly,
    # when installed, would shuffle that order: the run blocks it, as this checks the order).
    third = pytester.runpytest(
        "-s", "-v", "--faultline-seed=2", "--faultline-cache-clear", "-p", "no:randomly"
    )
    out = third.stdout.str()
    assert out.index("test_a.py::test_first") < out.index("test_b.py::test_flaky")


def test_passing_test_drops_its_cached_token(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_c="""
        import os
        from pytest_faultline import point, actions

        def test_env(faultline):
            faultline.arm("p", actions.Watch())
            point("p")
            assert os.environ.get("MAKE_IT_PASS")
        """
    )
    pytester.runpytest().assert_outcomes(failed=1)
    assert pytester.path.joinpath(".pytest_cache/v/faultline/tokens").exists()
    pytester._monkeypatch.setenv("MAKE_IT_PASS", "1")
    pytester.runpytest().assert_outcomes(passed=1)
    stored = json.loads(pytester.path.joinpath(".pytest_cache/v/faultline/tokens").read_text())
    assert stored == {}


def test_json_report_holds_every_test_under_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_faultline import point

        def test_plain():
            pass

        def test_ok(faultline):
            faultline.arm("p.ok", ValueError, times=1)
            with pytest.raises(ValueError):
                point("p.ok", user="ann")

        def test_bad(faultline):
            faultline.arm("p.bad", KeyError)
            point("p.bad")

        @pytest.mark.xfail(raises=KeyError)
        def test_expected(faultline):
            faultline.arm("p.x", KeyError)
            point("p.x")
        """
    )
    result = pytester.runpytest("--faultline-report=out/report.json", "--faultline-seed=8")
    result.assert_outcomes(passed=2, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["faultline: JSON report written to out/report.json"])
    data = json.loads(pytester.path.joinpath("out/report.json").read_text())
    assert data["version"] == 1
    assert data["seed"] == 8
    tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    assert set(tests) == {"test_ok", "test_bad", "test_expected"}
    assert tests["test_ok"]["outcome"] == "passed"
    assert tests["test_bad"]["outcome"] == "failed"
    assert tests["test_expected"]["outcome"] == "xfailed"
    event = tests["test_ok"]["events"][0]
    assert (event["kind"], event["name"]) == ("raise", "p.ok")
    assert "user='ann'" in event["detail"]
    assert tests["test_bad"]["token"].startswith(f"fl1.{tests['test_bad']['seed']}.")
    assert tests["test_bad"]["replay"].endswith(tests["test_bad"]["token"])


def test_failure_hook_gets_the_token(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_faultline_failure(item, token, record):
            print(f"\\nUPLOAD {item.name} {token} {record['seed']}")
        """
    )
    pytester.makepyfile(
        """
        def test_fails(faultline):
            assert False

        def test_passes(faultline):
            pass
        """
    )
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["UPLOAD test_fails fl1.* *"])
    result.stdout.no_fnmatch_line("UPLOAD test_passes*")
