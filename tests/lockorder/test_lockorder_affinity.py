"""Thread affinity: ``faultline.confine``, ``faultline.transfer`` and ``thread_affinity``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pytest_faultline import FaultlineError, ThreadAffinityError
from pytest_faultline.controller import Faultline
from pytest_faultline.lockorder.affinity import Affinity, ConfinedProxy

BOUND_S = 10.0


class Server:
    """Stands in for a non-thread-safe server object (pcaspy's in incident 002)."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def process(self) -> int:
        done = len(self.pending)
        self.pending.clear()
        return done

    def __len__(self) -> int:
        return len(self.pending)


def in_thread(fn: Callable[[], Any], name: str = "worker") -> BaseException | None:
    """Run ``fn`` in a new thread; return what it raised."""
    caught: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive()
    return caught[0] if caught else None


@pytest.fixture
def affinity() -> Any:
    guard = Affinity()
    yield guard
    guard.close()


def test_method_call_and_attribute_write_from_another_thread_raise(affinity: Affinity) -> None:
    server = Server()
    assert affinity.confine(server) is server
    # The bound method is fetched here, on the owner thread, and called on the other one.
    error = in_thread(server.process, name="server-thread")
    assert isinstance(error, ThreadAffinityError)
    message = str(error)
    assert "Server object is confined to thread 'MainThread'" in message
    assert "thread 'server-thread' called its method 'process'" in message
    assert "It was confined at" in message
    assert "test_lockorder_affinity.py" in message
    assert "faultline.transfer(obj, thread)" in message

    error = in_thread(lambda: setattr(server, "pending", []))
    assert isinstance(error, ThreadAffinityError)
    assert "set its attribute 'pending'" in str(error)

    error = in_thread(lambda: len(server))
    assert isinstance(error, ThreadAffinityError)
    assert "called its method '__len__'" in str(error)
    assert len(affinity.violations) == 3


def test_same_thread_use_is_clean(affinity: Affinity) -> None:
    server = Server()
    affinity.confine(server)
    server.pending.append("a")
    server.pending = ["a", "b"]
    assert len(server) == 2
    assert server.process() == 2
    assert isinstance(server, Server)
    # Reading plain data from another thread is not a use of the object.
    assert in_thread(lambda: server.pending) is None
    assert affinity.violations == []


def test_transfer_hands_ownership_over(affinity: Affinity) -> None:
    server = Server()
    affinity.confine(server)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(server.process()), name="owner")
    affinity.transfer(server, worker)  # before it starts: its ident is not known yet
    worker.start()
    worker.join(BOUND_S)
    assert results == [0]
    with pytest.raises(
        ThreadAffinityError, match="confined to thread 'owner' but thread 'MainThread'"
    ):
        server.process()
    affinity.transfer(server, threading.current_thread())
    assert server.process() == 0


def test_close_gives_the_class_back(affinity: Affinity) -> None:
    server = Server()
    affinity.confine(server)
    assert type(server) is not Server
    affinity.close()
    assert type(server) is Server
    assert in_thread(server.process) is None


def test_builtin_objects_get_a_guarding_proxy(affinity: Affinity) -> None:
    data: dict[str, int] = {}
    guarded = affinity.confine(data)
    assert isinstance(guarded, ConfinedProxy)
    guarded["a"] = 1
    assert data == {"a": 1}
    error = in_thread(lambda: guarded.update(b=2))
    assert isinstance(error, ThreadAffinityError)
    assert "dict object is confined" in str(error)
    error = in_thread(lambda: guarded.__setitem__("c", 3))
    assert isinstance(error, ThreadAffinityError)
    assert data == {"a": 1}


def test_transfer_of_an_unconfined_object_is_a_clear_error(affinity: Affinity) -> None:
    with pytest.raises(FaultlineError, match=r"is not confined; confine it first"):
        affinity.transfer(Server(), threading.current_thread())
    server = Server()
    affinity.confine(server)
    with pytest.raises(FaultlineError, match=r"thread must be a threading\.Thread"):
        affinity.transfer(server, "worker")  # type: ignore[arg-type]


def test_new_instances_of_listed_types_are_confined_to_their_maker(affinity: Affinity) -> None:
    affinity.confine_new_instances(Server)
    made: list[Server] = []
    assert in_thread(lambda: made.append(Server()), name="maker") is None
    with pytest.raises(ThreadAffinityError) as info:
        made[0].process()
    message = str(info.value)
    assert "confined to thread 'maker' but thread 'MainThread' called its method" in message
    assert "It was created at" in message
    assert "made.append(Server())" in message
    affinity.close()
    assert "__init__" in vars(Server)
    assert Server.__init__.__qualname__ == "Server.__init__"
    assert Server.__init__.__module__ == __name__


def test_faultline_confine_records_events_and_fails_for_swallowed_worker_errors() -> None:
    faultline = Faultline(seed=1, nodeid="t")
    server = faultline.confine(Server())

    def quiet() -> None:
        with contextlib.suppress(ThreadAffinityError):  # a server loop that logs and goes on
            server.process()

    assert in_thread(quiet) is None
    kinds = [(e.kind, e.name) for e in faultline.events]
    assert ("confine", "Server") in kinds
    assert ("thread-affinity", "violation") in kinds
    with pytest.raises(pytest.fail.Exception, match="raised in thread 'worker'"):
        faultline.close()
    assert type(server) is Server


E2E = """
import threading
import pytest
from pytest_faultline import ThreadAffinityError

class Server:
    def __init__(self):
        self.pending = []

    def process(self):
        self.pending.clear()


def run(fn, name="server-thread"):
    errors = []
    def body():
        try:
            fn()
        except Exception as exc:
            errors.append(exc)
    t = threading.Thread(target=body, name=name)
    t.start()
    t.join(10)
    return errors


@pytest.mark.faultline("thread_affinity", types=["test_app:Server"])
def test_naive_shares_the_server():
    server = Server()
    run(server.process)  # the error is swallowed by the thread's loop


@pytest.mark.faultline("thread_affinity", types=["test_app.Server"])
def test_fixed_keeps_it_on_its_thread():
    def serve():
        server = Server()
        server.process()
        server.pending = ["x"]
    assert run(serve) == []


def test_confine_and_transfer(faultline):
    server = faultline.confine(Server())
    done = []
    worker = threading.Thread(target=lambda: done.append(server.process()))
    faultline.transfer(server, worker)
    worker.start()
    worker.join(10)
    assert done == [None]


@pytest.mark.faultline("thread_affinity", types=["test_app:Nope"])
def test_bad_type():
    pass


def test_after():
    assert "__init__" in vars(Server)
    assert Server.__init__.__qualname__ == "Server.__init__"
"""


def test_thread_affinity_scenario_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=E2E)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ScenarioError: faultline scenario 'thread_affinity': cannot find the type "
            "'test_app:Nope' (module 'test_app' has no 'Nope')*",
            "*ThreadAffinityError: raised in thread 'server-thread' while the test ran*",
            "*Server object is confined to thread 'MainThread' but thread 'server-thread' called "
            "its method 'process'. It was created at *test_app.py:*",
            "*server = Server()*",
        ]
    )


def test_guarded_methods_follow_a_monkeypatched_class(
    affinity: Affinity, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = affinity.confine(Server())
    assert first.process() == 0
    monkeypatch.setattr(Server, "process", lambda self: 42)
    second = affinity.confine(Server())  # the guard class made for `first` is reused
    assert second.process() == 42
    assert isinstance(in_thread(second.process), ThreadAffinityError)


def test_allow_lets_named_threads_use_the_object(affinity: Affinity) -> None:
    server = affinity.confine(Server(), allow=("helper",))
    server.pending.append("x")
    assert in_thread(server.process, name="helper") is None  # allowed by name
    error = in_thread(server.process, name="intruder")
    assert isinstance(error, ThreadAffinityError)
    assert "'intruder' called its method 'process'" in str(error)


def test_allow_takes_thread_objects(faultline: Faultline) -> None:
    done = threading.Event()
    server = Server()

    def work() -> None:
        server.process()
        done.set()

    worker = threading.Thread(target=work, name="worker")
    faultline.confine(server, allow=[worker])  # allowed before it has started
    worker.start()
    worker.join(BOUND_S)
    assert done.is_set()


@pytest.mark.parametrize("allow", [42, [1, 2], {"helper": 1}])
def test_bad_allow_is_refused(faultline: Faultline, allow: object) -> None:
    with pytest.raises(FaultlineError, match="allow= takes threads or thread names"):
        faultline.confine(Server(), allow=allow)


def test_scenario_allow_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        server="""
        class Server:
            def process(self):
                return 1
        """,
        test_allow="""
        import threading
        import pytest
        from server import Server

        def use_from(name, obj):
            out = []
            t = threading.Thread(target=lambda: out.append(obj.process()), name=name)
            t.start()
            t.join(10)
            return out

        @pytest.mark.faultline("thread_affinity", types=["server:Server"], allow=["helper"])
        def test_helper_may(faultline):
            assert use_from("helper", Server()) == [1]

        @pytest.mark.faultline("thread_affinity", types=["server:Server"], allow=["helper"])
        def test_others_may_not(faultline):
            assert use_from("intruder", Server()) == [1]
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ThreadAffinityError*'intruder' called its method 'process'*"])
