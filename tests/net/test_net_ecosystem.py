"""The network layer beside users' own checks: no ended proxy thread stays listed, and an
unreachable Toxiproxy is asked once per session, not once per test."""

from __future__ import annotations

import socket
import threading

import pytest

from pytest_faultline import Faultline

BOUND_S = 10.0


def test_a_closed_proxy_leaves_no_thread_listed(faultline: Faultline) -> None:
    before = set(threading.enumerate())
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        proxy = faultline.proxy(upstream.getsockname())
        with socket.create_connection(proxy.listen, timeout=BOUND_S):
            pass
        proxy.close()
    # The proxy's raw thread names itself through threading.current_thread(), which registers
    # a dummy Thread; Python before 3.13 kept it listed after the thread ended, and users'
    # thread-leak checks (set(threading.enumerate()) before and after) then failed.
    assert [t for t in threading.enumerate() if t not in before] == []


class RefusingApi:
    """A TCP server that accepts and hangs up at once, counting the attempts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="refusing-api")
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(BOUND_S)
        self.sock.close()


def test_an_unreachable_toxiproxy_is_asked_once_per_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "\n".join(
            f"def test_{i}(faultline):\n    faultline.proxy(('127.0.0.1', 9))\n" for i in range(4)
        )
    )
    api = RefusingApi()
    try:
        args = ["--faultline-backend=toxiproxy", f"--toxiproxy-url={api.url}", "-rs"]
        skipped = pytester.runpytest(*args, "--toxiproxy-skip-unavailable")
        skipped.assert_outcomes(skipped=4)
        assert api.accepted == 1  # the other three tests were told at once
        skipped.stdout.fnmatch_lines(
            [
                f"*cannot reach the Toxiproxy server at {api.url}*(skipped: "
                "--toxiproxy-skip-unavailable)",
                "*found unreachable earlier in this session*",
            ]
        )
        # A new session tries again (the server may have started since), once.
        failed = pytester.runpytest(*args)
        failed.assert_outcomes(failed=4)
        assert api.accepted == 2
        failed.stdout.fnmatch_lines(["*ToxiproxyUnreachable: cannot reach the Toxiproxy*"])
    finally:
        api.close()
