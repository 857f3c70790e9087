"""The faultline marker, --faultline, --faultline-list and scenario registration, end to end."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from pytest_faultline import scenario, actions

@scenario("flaky_db")
def flaky_db(faultline, every: int = 2, message: str = "db down"):
    '''Every `every`-th write raises ConnectionError.

    More text that --faultline-list does not show.
    '''
    faultline.arm("db.write", ConnectionError(message), after=every - 1, times=1)

@scenario("with_teardown")
def with_teardown(faultline):
    '''Records setup and teardown.'''
    print("scenario-setup")
    yield
    print("scenario-teardown")
"""

APP = """
from pytest_faultline import point

def write(store, key, value):
    point("db.write", key=key)
    store[key] = value

def write_all(store, items):
    for k, v in items:
        write(store, k, v)

def write_all_retrying(store, items):
    for k, v in items:
        for attempt in range(3):
            try:
                write(store, k, v)
                break
            except ConnectionError:
                continue
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(app=APP)
    return pytester


def test_marker_applies_a_user_scenario_both_sides(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import pytest
        from app import write_all, write_all_retrying

        ITEMS = [("a", 1), ("b", 2), ("c", 3)]

        @pytest.mark.faultline("flaky_db", every=2)
        def test_naive():
            store = {}
            write_all(store, ITEMS)

        @pytest.mark.faultline("flaky_db", every=2)
        def test_retrying(faultline):
            store = {}
            write_all_retrying(store, ITEMS)
            assert store == dict(ITEMS)
            assert faultline.hits("db.write") == 4
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ConnectionError: db down*",
            "*- faultline (call) -*",
            "seed: *",
            "token:  fl1.*",
            "scenarios: flaky_db(every=2, message='db down')",
            "last 2 of 2 fault events:",
            "*scenario flaky_db: every=2, message='db down'",
            "*[[]MainThread[]] raise db.write: raise ConnectionError('db down') key='b' (hit 2)",
            "replay: pytest test_app.py::test_naive --faultline-replay=fl1.*",
        ]
    )


def test_markers_stack_and_generator_scenarios_tear_down(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_stack="""
        import pytest
        from pytest_faultline import point

        @pytest.mark.faultline("with_teardown")
        @pytest.mark.faultline("flaky_db", every=1)
        def test_both(faultline):
            # Applied as read: top to bottom (and module, then class, then function marks).
            assert [n for n, _ in faultline.scenarios] == ["with_teardown", "flaky_db"]
            with pytest.raises(ConnectionError):
                point("db.write")
        """
    )
    result = project.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*scenario-setup*", "*scenario-teardown*"])


def test_cli_applies_scenarios_to_every_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_cli="""
        from app import write_all

        def test_one():
            write_all({}, [("a", 1)])

        def test_two():
            write_all({}, [("a", 1), ("b", 2)])
        """
    )
    result = project.runpytest("--faultline=flaky_db")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*scenarios for every test: flaky_db*"])
    project.runpytest().assert_outcomes(passed=2)


def test_unknown_scenario_lists_known_names_and_closest(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.faultline("flaky_bd")
        def test_x():
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ScenarioError: unknown faultline scenario 'flaky_bd'. Did you mean 'flaky_db'? "
            "Known scenarios: *flaky_db*partial_read*. Run 'pytest --faultline-list' for their "
            "parameters"
        ]
    )
    # A usage error shows the fix, not a traceback into the plugin.
    result.stdout.no_fnmatch_line("*registry.py*")


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            'faultline("flaky_db", evry=3)',
            "*faultline scenario 'flaky_db' has no parameter 'evry' (given in "
            "@pytest.mark.faultline on test_params.py::test_x). Did you mean 'every'? "
            "Accepted parameters: every: int = 2, message: str = 'db down'",
        ),
        (
            'faultline("flaky_db", every="3")',
            "*faultline scenario 'flaky_db': parameter 'every' must be int, got '3' (str) in "
            "@pytest.mark.faultline on test_params.py::test_x. Accepted parameters: *",
        ),
        (
            'faultline("thread_preemption", strategy="bfs")',
            "*parameter 'strategy' must be one of 'random', 'pct', 'dfs', got 'bfs'*",
        ),
        (
            'faultline("partial_read", max_bytes=None)',
            "*parameter 'max_bytes' must be int, got None (NoneType)*",
        ),
        (
            'faultline("clock_jump", seconds=5)',
            "*faultline scenario 'clock_jump' needs parameter 'at' (missing in "
            "@pytest.mark.faultline on test_params.py::test_x)*",
        ),
        (
            'faultline("flaky_db", "with_teardown")',
            "*@pytest.mark.faultline takes exactly one scenario name and keyword parameters*",
        ),
    ],
)
def test_bad_parameters_fail_at_setup_with_the_fix(
    project: pytest.Pytester, marker: str, expected: str
) -> None:
    project.makepyfile(
        test_params=f"""
        import pytest

        ran = []

        @pytest.mark.{marker}
        def test_x():
            ran.append(1)
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


def test_faultline_list_prints_scenarios_with_params_and_docs(project: pytest.Pytester) -> None:
    result = project.runpytest("--faultline-list")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "flaky_db(every: int = 2, message: str = 'db down')",
            "    Every `every`-th write raises ConnectionError.",
            "    defined in conftest:flaky_db",
            "partial_read(max_bytes: int = 1, peer: str or None = None)",
            "thread_preemption(runs: int = 100, "
            "strategy: one of 'random', 'pct', 'dfs' = 'random'*",
        ]
    )
    result.stdout.no_fnmatch_line("*More text*")
    result.stdout.no_fnmatch_line("*collected*")


def test_scenarios_hook_registers_plugin_scenarios(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_faultline import actions

        def slow_disk(faultline, seconds: float = 0.0):
            '''The disk answers late.'''
            faultline.arm("disk.read", actions.Delay(seconds))

        def pytest_faultline_scenarios(registry):
            registry.add("slow_disk", slow_disk)
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from pytest_faultline import point

        @pytest.mark.faultline("slow_disk", seconds=0.0)
        def test_x(faultline):
            point("disk.read")
            assert faultline.hits("disk.read") == 1
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--faultline-list").stdout.fnmatch_lines(["slow_disk(seconds: float = 0.0)"])


def test_duplicate_scenario_name_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_faultline import scenario

        @scenario("partial_read")
        def mine(faultline):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        [
            "*scenario 'partial_read' is already registered by "
            "pytest_faultline.builtins.net:partial_read; conftest:mine must choose another name*"
        ]
    )


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.faultline(name, **params): apply the fault *"])
