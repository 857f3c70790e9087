"""``--faultline-lockdep``: one graph across the whole session."""

from __future__ import annotations

import pytest

SHARED = """
import threading

odb_lock = threading.Lock()
msg_lock = threading.Lock()
"""


def test_inversion_split_across_two_tests_is_caught(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shared=SHARED)
    pytester.makepyfile(
        test_one="""
        import threading
        from shared import odb_lock, msg_lock

        def test_writer():
            with odb_lock:
                with msg_lock:
                    pass
        """,
        test_two="""
        import threading
        from shared import odb_lock, msg_lock

        def test_messenger():
            def work():
                with msg_lock:
                    with odb_lock:
                        pass
            thread = threading.Thread(target=work, name="messenger")
            thread.start()
            thread.join(10)
        """,
    )
    result = pytester.runpytest_subprocess("--faultline-lockdep", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*faultline lockdep: 1 lock-order inversion(s)*",
            "[[]1[]] lock-order inversion (potential deadlock): "
            "shared.odb_lock -> shared.msg_lock -> shared.odb_lock",
            "*the cycle closed in thread 'messenger' in test_two.py::test_messenger",
            "*msg_lock acquired while holding shared.odb_lock, in thread 'MainThread' "
            "(test test_one.py::test_writer):",
            "*odb_lock acquired while holding shared.msg_lock, in thread 'messenger':",
            "*shared.odb_lock: Lock created at *shared.py:3 (odb_lock = threading.Lock())",
        ]
    )


def test_consistent_session_is_clean_and_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shared=SHARED)
    pytester.makepyfile(
        test_one="""
        from shared import odb_lock, msg_lock

        def test_a():
            with odb_lock, msg_lock:
                pass

        def test_b():
            with odb_lock, msg_lock:
                pass
        """
    )
    result = pytester.runpytest_subprocess("--faultline-lockdep", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no lock-order inversion (1 lock-order edges seen)*"])


def test_without_the_option_nothing_is_tracked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shared=SHARED)
    pytester.makepyfile(
        test_one="""
        import threading
        from shared import odb_lock

        def test_plain():
            assert type(odb_lock).__module__ == "_thread"
            assert threading.Lock.__module__ == "_thread"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert "lockdep" not in result.stdout.str()
