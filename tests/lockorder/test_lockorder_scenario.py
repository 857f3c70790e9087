"""The ``lock_order`` scenario and ``faultline.lock_order`` end to end."""

from __future__ import annotations

import pytest

HELPERS = '''
import threading

BOUND_S = 10.0


def run_in_order(*steps):
    """Each step in its own thread, one after another: orders taken at different times."""
    errors = []
    for number, step in enumerate(steps, 1):
        def body(step=step):
            try:
                step()
            except BaseException as exc:
                errors.append(exc)
        thread = threading.Thread(target=body, name=f"worker-{number}")
        thread.start()
        thread.join(BOUND_S)
        assert not thread.is_alive()
    return errors


class Store:
    """Two locks; `naive` takes them in both orders, `fixed` always odb before msg."""

    def __init__(self):
        self._odb_lock = threading.RLock()
        self._msg_lock = threading.Lock()

    def write(self):
        with self._odb_lock:
            with self._msg_lock:
                pass

    def message_naive(self):
        with self._msg_lock:
            with self._odb_lock:
                pass

    def message_fixed(self):
        with self._odb_lock:
            with self._msg_lock:
                pass
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(store=HELPERS)
    return pytester


def test_scenario_fails_the_naive_code_and_passes_the_fixed_code(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        """
        import pytest
        from store import Store, run_in_order

        @pytest.mark.faultline("lock_order")
        def test_naive():
            store = Store()
            errors = run_in_order(store.write, store.message_naive)
            raise errors[0]

        @pytest.mark.faultline("lock_order")
        def test_fixed():
            store = Store()
            assert run_in_order(store.write, store.message_fixed) == []
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*LockOrderError: lock-order inversion (potential deadlock): Store.*",
            "*a cycle among 2 lock classes*",
            "*Store._odb_lock acquired while holding Store._msg_lock, in thread 'worker-2'*",
            "*with self._odb_lock:*",
            "*Store._msg_lock previously acquired by the same thread at:*",
            "*Store._odb_lock: RLock created at *store.py:*(self._odb_lock = threading.RLock())*",
            "*fault events*",
            "*lock-order inversion: Store.*",
        ]
    )


def test_worker_whose_error_is_swallowed_still_fails_the_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from store import Store, run_in_order

        @pytest.mark.faultline("lock_order")
        def test_swallowed():
            store = Store()
            def quiet_naive():
                try:
                    store.message_naive()
                except Exception:
                    pass  # the worker hides its error
            assert run_in_order(store.write, quiet_naive) == []
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*LockOrderError: raised in thread 'worker-2' while the test ran; the test fails "
            "even if that thread's exception was caught or lost:",
            "*lock-order inversion (potential deadlock)*",
        ]
    )


def test_pytest_raises_in_the_test_thread_is_respected(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import threading
        import pytest
        from pytest_faultline import LockOrderError
        from store import Store, run_in_order

        @pytest.mark.faultline("lock_order")
        def test_expected():
            store = Store()
            assert run_in_order(store.write) == []
            with pytest.raises(LockOrderError, match="Store._odb_lock acquired while holding"):
                store.message_naive()
            assert not store._msg_lock.locked()
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_fail_false_records_for_asserts(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import threading
        import pytest
        from store import Store, run_in_order

        @pytest.mark.faultline("lock_order", fail=False)
        def test_records(faultline):
            store = Store()
            assert run_in_order(store.write, store.message_naive) == []
            order = faultline.lock_order
            assert [str(e) for e in order.edges] == [
                "Store._odb_lock -> Store._msg_lock",
                "Store._msg_lock -> Store._odb_lock",
            ]
            (inversion,) = order.inversions
            assert inversion.kind == "class"
            assert [e.kind for e in faultline.events if e.kind == "lock-order"] == ["lock-order"]

        def test_service_without_the_marker(faultline):
            order = faultline.lock_order  # starts a recording watcher
            store = Store()
            assert run_in_order(store.write, store.message_fixed) == []
            assert order.inversions == []
            assert len(order.edges) == 1
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_patches_are_restored_after_a_failing_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import threading
        import pytest
        from store import Store, run_in_order

        ORIGINAL = (threading.Lock, threading.RLock)

        @pytest.mark.faultline("lock_order")
        def test_fails():
            assert threading.Lock is not ORIGINAL[0]
            store = Store()
            run_in_order(store.write, store.message_naive)
            assert False, "the body fails on its own"

        def test_after():
            assert (threading.Lock, threading.RLock) == ORIGINAL
            assert type(threading.Lock()).__module__ == "_thread"
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    # The body's own failure is kept as the context of the worker's lock-order error.
    result.stdout.fnmatch_lines(
        ["*the body fails on its own*", "*LockOrderError: raised in thread 'worker-2'*"]
    )


def test_bad_parameter_is_a_clear_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faultline("lock_order", fail="yes")
        def test_x():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*parameter 'fail' must be*"])


def test_three_locks_reentry_and_same_class_nesting_end_to_end(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import threading
        import pytest
        from store import run_in_order

        class Account:
            def __init__(self, number):
                self.number = number
                self._lock = threading.Lock()

        def transfer_naive(source, target):
            with source._lock:
                with target._lock:
                    pass

        def transfer_ordered(source, target):
            first, second = sorted((source, target), key=lambda a: a.number)
            with first._lock:
                with second._lock:
                    pass

        @pytest.mark.faultline("lock_order")
        def test_three_lock_cycle():
            odb, msg, log = threading.Lock(), threading.Lock(), threading.Lock()
            def one():
                with odb:
                    with msg:
                        pass
            def two():
                with msg:
                    with log:
                        pass
            def three():
                with log:
                    with odb:
                        pass
            run_in_order(one, two, three)

        @pytest.mark.faultline("lock_order")
        def test_rlock_reentry(faultline):
            outer = threading.RLock()
            inner = threading.Lock()
            def nested():
                with outer:
                    with inner:
                        with outer:
                            pass
            assert run_in_order(nested, nested) == []
            assert [str(e) for e in faultline.lock_order.edges] == ["outer -> inner"]

        @pytest.mark.faultline("lock_order")
        def test_accounts_ordered():
            a, b = Account(1), Account(2)
            steps = [lambda: transfer_ordered(a, b), lambda: transfer_ordered(b, a)]
            assert run_in_order(*steps) == []

        @pytest.mark.faultline("lock_order")
        def test_accounts_naive():
            a, b = Account(1), Account(2)
            run_in_order(lambda: transfer_naive(a, b), lambda: transfer_naive(b, a))
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly", "-rf")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_three_lock_cycle _*",
            "*a cycle among 3 lock classes*",
            "*_ test_accounts_naive _*",
            "*a cycle among 2 locks of one class, Account._lock:*",
            "*Account._lock (L1) acquired while holding Account._lock (L2), in thread 'worker-2':*",
            "FAILED *::test_three_lock_cycle*",
            "FAILED *::test_accounts_naive*",
        ]
    )
