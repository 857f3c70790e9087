"""Reruns (pytest-rerunfailures): each attempt draws from its own seed, printed and replayable."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("pytest_rerunfailures")

COIN = """
import pytest
from pytest_faultline import point, actions

@pytest.mark.flaky(reruns=3)
def test_coin(faultline):
    faultline.arm("coin", actions.Return("heads"), probability=0.5)
    flips = "".join("H" if point("coin") == "heads" else "T" for _ in range(16))
    print(f"SEED={faultline.seed} FLIPS={flips}")
    assert flips.count("H") < 0  # always fails: every attempt runs, each prints its draws
"""


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    # assert_outcomes() knows no "rerun": compare the parsed summary line instead.
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("seconds", "second")}


def _attempts(output: str) -> list[tuple[str, str]]:
    return re.findall(r"SEED=(\d+) FLIPS=(\w+)", output)


def test_each_rerun_draws_from_a_fresh_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_coin=COIN)
    # A subprocess: pytest-rerunfailures starts a server thread that must not outlive the run.
    result = pytester.runpytest_subprocess(
        "-s", "-p", "rerunfailures", "--faultline-seed=7", "-p", "no:cacheprovider"
    )
    assert _outcomes(result) == {"failed": 1, "rerun": 3}
    attempts = _attempts(result.stdout.str())
    assert len(attempts) == 4
    assert len({seed for seed, _ in attempts}) == 4  # four attempts, four seeds
    assert len({flips for _, flips in attempts}) == 4  # and so four different runs
    result.stdout.fnmatch_lines(
        [
            "rerun:  attempt 4, with its own seed (derived from the test's and the attempt; "
            "--faultline-rerun-seed=same keeps the first one)",
        ]
    )
    # The last attempt's token replays that attempt exactly, without rerunfailures.
    last_seed, last_flips = attempts[-1]
    token = re.search(r"replay: pytest \S+ --faultline-replay=(\S+)", result.stdout.str())
    assert token
    assert token.group(1).startswith(f"fl1.{last_seed}.")
    replayed = pytester.runpytest_subprocess(
        "-s", "-p", "no:rerunfailures", f"--faultline-replay={token.group(1)}"
    )
    replayed.assert_outcomes(failed=1)
    assert _attempts(replayed.stdout.str()) == [(last_seed, last_flips)]


def test_rerun_seed_same_keeps_the_first_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_coin=COIN)
    result = pytester.runpytest_subprocess(
        "-s",
        "-p",
        "rerunfailures",
        "--faultline-seed=7",
        "--faultline-rerun-seed=same",
        "-p",
        "no:cacheprovider",
    )
    assert _outcomes(result) == {"failed": 1, "rerun": 3}
    attempts = _attempts(result.stdout.str())
    assert len(attempts) == 4
    assert len(set(attempts)) == 1  # every attempt met the very same faults
    result.stdout.fnmatch_lines(["rerun:  attempt 4, with the first attempt's seed"])


def test_a_fresh_seed_lets_a_rerun_pass_a_probabilistic_fault(pytester: pytest.Pytester) -> None:
    # The code survives one failure (it retries once); two failures in a row fail it. Under
    # the same seed a failing attempt fails again every time; fresh seeds let a rerun pass.
    pytester.makepyfile(
        test_retry="""
        import pytest
        from pytest_faultline import point

        def fetch():
            for _ in range(2):
                try:
                    point("net")
                    return "ok"
                except OSError:
                    pass
            raise OSError("gave up")

        @pytest.mark.flaky(reruns=6)
        def test_fetch(faultline):
            faultline.arm("net", OSError, probability=0.7)
            assert fetch() == "ok"
        """
    )
    same = pytester.runpytest_subprocess(
        "-p", "rerunfailures", "--faultline-rerun-seed=same", "--faultline-seed=10"
    )
    fresh = pytester.runpytest_subprocess("-p", "rerunfailures", "--faultline-seed=10")
    # Seed 10 fails its first attempt: kept, it fails all seven; fresh, the second passes.
    assert _outcomes(same) == {"failed": 1, "rerun": 6}
    assert _outcomes(fresh) == {"passed": 1, "rerun": 1}


def test_rerun_seed_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--faultline-rerun-seed=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pytest-faultline: --faultline-rerun-seed must be one of fresh, same, got 'sometimes'"]
    )
