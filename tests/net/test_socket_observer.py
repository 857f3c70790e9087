"""The socket observer (the fault sweep's view of socket calls) costs nothing while unset: the
class holds the fault layer's own methods, and the observed ones only while an observer is set.
Closes and shutdowns are patched only while observed."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_faultline.controller import Faultline
from pytest_faultline.net import _socket_patches

ORIGINAL_CLOSE = socket.socket.__dict__["close"]
ORIGINAL_RECV = socket.socket.recv


@pytest.fixture
def fl() -> Iterator[Faultline]:
    controller = Faultline(seed=3, nodeid="tests/net/test_socket_observer.py::test_x")
    yield controller
    controller.close()


def record_into(seen: list[str]) -> _socket_patches.SocketObserver:
    def observer(
        method: str,
        sock: socket.socket,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        name_of: Callable[[socket.socket], str | None],
    ) -> Any:
        seen.append(f"{method}:{name_of(sock)}")
        return call(sock, *args)

    return observer


def test_unobserved_calls_go_straight_to_the_fault_layer(fl: Faultline) -> None:
    assert fl.sockets.faults == []  # the layer is installed, with no fault in force
    recv = socket.socket.__dict__["recv"]
    assert recv.__code__.co_name == "recv"  # the layer's own, no wrapper frame
    assert "observed" not in recv.__qualname__
    assert socket.socket.__dict__["close"] is ORIGINAL_CLOSE
    assert "shutdown" not in socket.socket.__dict__


def test_the_observer_wraps_only_while_set(fl: Faultline) -> None:
    assert fl.sockets.faults == []
    plain = socket.socket.__dict__["recv"]
    seen: list[str] = []
    previous = _socket_patches.set_observer(record_into(seen))
    try:
        assert socket.socket.__dict__["recv"] is not plain
        assert "observed" in socket.socket.__dict__["close"].__code__.co_name
        listener = socket.create_server(("127.0.0.1", 0))
        a = socket.socket()
        try:
            a.connect(listener.getsockname())
            b, _ = listener.accept()
            with b:
                a.sendall(b"hi")
                assert b.recv(2) == b"hi"
                a.shutdown(socket.SHUT_WR)
        finally:
            a.close()
            listener.close()
    finally:
        _socket_patches.set_observer(previous)
    assert socket.socket.__dict__["recv"] is plain
    assert socket.socket.__dict__["close"] is ORIGINAL_CLOSE
    assert "shutdown" not in socket.socket.__dict__
    assert seen[:3] == ["connect:connected-0", "accept:socket-0", "sendall:connected-0"]
    assert "recv:accepted-0" in seen
    assert "shutdown:connected-0" in seen
    assert "close:connected-0" in seen
    assert "close:socket-0" in seen  # the listener (the sweep's probe takes it for no site)


def test_nested_layers_observe_once_and_restore_in_order() -> None:
    outer = Faultline(seed=1, nodeid="outer")
    try:
        assert outer.sockets.faults == []
        outer_recv = socket.socket.__dict__["recv"]
        seen: list[str] = []
        previous = _socket_patches.set_observer(record_into(seen))
        try:
            inner = Faultline(seed=2, nodeid="inner")
            try:
                assert inner.sockets.faults == []
                left, right = socket.socketpair(socket.AF_UNIX)
                with left, right:
                    left.send(b"x")
                    assert right.recv(1) == b"x"
            finally:
                inner.close()
            assert seen.count("recv:None") == 1  # the inner layer's observer call only
            assert "observed" in socket.socket.__dict__["recv"].__code__.co_name
        finally:
            _socket_patches.set_observer(previous)
        assert socket.socket.__dict__["recv"] is outer_recv
    finally:
        outer.close()
    assert socket.socket.recv is ORIGINAL_RECV
    assert socket.socket.__dict__["close"] is ORIGINAL_CLOSE
