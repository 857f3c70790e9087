"""The built-in network scenarios end to end through the marker: the naive side fails under the
fault, the correct side passes."""

from __future__ import annotations

import inspect
import re

import pytest

from . import sockets_support

# Unclosed sockets and exceptions escaping threads fail the inner runs too. Only those: a blanket
# -W error would also fail on unrelated plugins' warnings (pytest-benchmark's, under xdist).
STRICT_WARNINGS = (
    "-W",
    "error::ResourceWarning",
    "-W",
    "error::pytest.PytestUnraisableExceptionWarning",
    "-W",
    "error::pytest.PytestUnhandledThreadExceptionWarning",
)
SUBPROCESS_ARGS = ("-p", "no:randomly", "-p", "no:cacheprovider", "-v", *STRICT_WARNINGS)

CONFTEST = """
import pytest
from sockets_support import LoopbackServer, sender

PAYLOAD = bytes(range(256)) * 2


@pytest.fixture
def server():
    with LoopbackServer(sender(PAYLOAD)) as srv:
        yield srv
"""

DEMO_SERVER = '''
"""A server that recycles each connection's state between reading a request and answering."""
import socket
import threading

from pytest_faultline import point


class Server:
    def __init__(self, robust):
        self.robust = robust
        self.errors = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.address = self.listener.getsockname()[:2]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def recycle(self):
        point("demo.recycle")

    def handle(self, conn):
        conn.settimeout(5)
        request = conn.recv(64)
        self.recycle()
        conn.sendall(b"ok " + request)

    def run(self):
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return  # closed at the end of the test
                with conn:
                    if not self.robust:
                        self.handle(conn)  # the bug: one vanished client ends the server
                        continue
                    try:
                        self.handle(conn)
                    except OSError:
                        continue  # the client went away mid-recycle: serve the next one
        except Exception as exc:
            self.errors.append(exc)

    def close(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a pending accept (Linux)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


def ask(address, request):
    with socket.create_connection(address, timeout=1) as sock:
        sock.sendall(request)
        return sock.recv(64)
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(sockets_support=inspect.getsource(sockets_support))
    pytester.makeconftest(CONFTEST)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*SUBPROCESS_ARGS, *args, timeout=120)


def test_partial_read_fails_a_single_recv_and_spares_a_loop(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from conftest import PAYLOAD
        from sockets_support import connect, read_correct, read_naive

        @pytest.mark.faultline("partial_read", max_bytes=3)
        def test_naive(server):
            with connect(server.address) as sock:
                assert server.served.wait(5)
                assert read_naive(sock) == PAYLOAD

        @pytest.mark.faultline("partial_read", max_bytes=3)
        def test_correct(server):
            with connect(server.address) as sock:
                assert read_correct(sock) == PAYLOAD
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_naive FAILED*",
            "*::test_correct PASSED*",
            "*- faultline (call) -*",
            "scenarios: partial_read(max_bytes=3, peer=None)",
            "*short-read socket connected-0 to 127.0.0.1:*: read * of * bytes (short_reads(3))",
            "replay: pytest *test_naive --faultline-replay=fl1.*",
        ]
    )


def test_partial_read_for_every_test_from_the_command_line(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from conftest import PAYLOAD
        from sockets_support import connect, read_correct, read_naive

        def test_naive(server):
            with connect(server.address) as sock:
                assert server.served.wait(5)
                assert read_naive(sock) == PAYLOAD

        def test_correct(server):
            with connect(server.address) as sock:
                assert read_correct(sock) == PAYLOAD
        """
    )
    run(project).assert_outcomes(passed=2)  # without the fault, both pass on loopback
    result = run(project, "--faultline=partial_read")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*::test_naive FAILED*", "*::test_correct PASSED*"])


def test_partial_read_is_scoped_by_peer(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from conftest import PAYLOAD
        from sockets_support import LoopbackServer, connect, read_naive, sender

        def test_other_peers_are_untouched(faultline, server):
            faultline.apply("partial_read", max_bytes=1, peer="127.0.0.1:1")
            with connect(server.address) as sock:
                assert server.served.wait(5)
                assert read_naive(sock) == PAYLOAD
            assert not [e for e in faultline.events if e.kind == "short-read"]

        def test_the_named_peer_is_cut(faultline, server):
            faultline.apply("partial_read", max_bytes=1, peer=server.peer)
            with connect(server.address) as sock:
                assert server.served.wait(5)
                assert len(sock.recv(4)) == 1
        """
    )
    run(project).assert_outcomes(passed=2)


def test_timeout_mid_message(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from conftest import PAYLOAD
        from sockets_support import ProtocolError, connect, read_correct, read_lenient

        @pytest.mark.faultline("timeout_mid_message", after_bytes=10)
        def test_naive(server):
            with connect(server.address, timeout=0.2) as sock:
                assert read_lenient(sock) == PAYLOAD  # got 6 bytes and a timeout

        @pytest.mark.faultline("timeout_mid_message", after_bytes=10)
        def test_correct(server):
            with connect(server.address, timeout=0.2) as sock:
                with pytest.raises(ProtocolError, match="timed out after 6 of 512 bytes"):
                    read_correct(sock)
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_naive FAILED*",
            "*::test_correct PASSED*",
            "scenarios: timeout_mid_message(after_bytes=10, peer=None)",
            "*stall socket connected-0 to *: after 10 bytes (stall_after(10))",
            "*timeout socket connected-0 to *: read timed out after 0.2s",
        ]
    )


def test_truncated_message(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from conftest import PAYLOAD
        from sockets_support import ProtocolError, connect, read_correct, read_lenient

        @pytest.mark.faultline("truncated_message", after_bytes=100)
        def test_naive(server):
            with connect(server.address) as sock:
                assert read_lenient(sock) == PAYLOAD

        @pytest.mark.faultline("truncated_message", after_bytes=100)
        def test_correct(server):
            with connect(server.address) as sock:
                with pytest.raises(ProtocolError, match="connection closed after 96 of 512 bytes"):
                    read_correct(sock)
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_naive FAILED*",
            "*::test_correct PASSED*",
            "scenarios: truncated_message(after_bytes=100, peer=None)",
            "*eof socket connected-0 to *: after 100 bytes (close_after(100))",
        ]
    )


@pytest.mark.parametrize(
    ("at", "target"),
    [
        ("'demo.recycle'", "demo.recycle"),
        ("'demo_server:Server.recycle'", "demo_server:Server.recycle"),
        ("Server.recycle", "demo_server:Server.recycle"),  # the function itself
    ],
)
def test_disconnect_mid_recycle(project: pytest.Pytester, at: str, target: str) -> None:
    project.makepyfile(demo_server=DEMO_SERVER)
    project.makepyfile(
        test_recycle=f"""
        import pytest
        from demo_server import Server, ask

        @pytest.fixture(params=["naive", "robust"])
        def server(request):
            srv = Server(robust=request.param == "robust")
            yield srv
            srv.close()

        @pytest.mark.faultline("disconnect_mid_recycle", at={at})
        def test_server_survives_a_disconnect_mid_recycle(faultline, server):
            assert ask(server.address, b"1") == b""  # dropped while the server recycled
            assert ask(server.address, b"2") == b"ok 2"  # and the server goes on
            assert not server.errors
            drops = [e for e in faultline.events if e.name.startswith("socket ")]
            assert [e.kind for e in drops] == ["disconnect", "disconnect"]  # both ends
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_server_survives_a_disconnect_mid_recycle[[]naive[]] FAILED*",
            "*::test_server_survives_a_disconnect_mid_recycle[[]robust[]] PASSED*",
            "scenarios: disconnect_mid_recycle(at=*, times=1)",
            f"*disconnect {target}: disconnect (hit 1)",
            "*disconnect socket connected-0 to 127.0.0.1:*: shut down both directions",
        ]
    )


def test_the_same_seed_or_token_replays_the_same_split_points(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from sockets_support import connect

        @pytest.mark.faultline("partial_read", max_bytes=16)
        def test_sizes(server):
            with connect(server.address) as sock:
                assert server.served.wait(5)
                sizes = []
                while chunk := sock.recv(4096):
                    sizes.append(len(chunk))
            print("SIZES", sizes)
            assert not sizes, "fail, so the report prints the replay token"
        """
    )

    def sizes_and_token(*args: str) -> tuple[str, str]:
        result = run(project, "-s", *args)
        result.assert_outcomes(failed=1)
        found = re.search(r"SIZES \[[0-9, ]+\]", result.stdout.str())
        token = re.search(r"--faultline-replay=(fl1\.[0-9a-f.]+)", result.stdout.str())
        assert found is not None
        assert token is not None
        return found.group(0), token.group(1)

    first, token = sizes_and_token("--faultline-seed=11")
    assert sizes_and_token("--faultline-seed=11")[0] == first
    assert sizes_and_token("--faultline-seed=12")[0] != first
    assert sizes_and_token("--faultline-seed=12", f"--faultline-replay={token}")[0] == first


def test_patches_are_restored_after_a_failing_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import socket
        import pytest
        from conftest import PAYLOAD
        from sockets_support import connect, read_naive

        BEFORE = dict(socket.socket.__dict__)

        @pytest.mark.faultline("partial_read", max_bytes=1)
        @pytest.mark.faultline("timeout_mid_message", after_bytes=1000)
        def test_fails_under_faults(server):
            assert "recv" in socket.socket.__dict__
            with connect(server.address) as sock:
                read_naive(sock)

        def test_after(server):
            assert dict(socket.socket.__dict__) == BEFORE
            with connect(server.address) as sock:
                assert server.served.wait(5)
                assert read_naive(sock) == PAYLOAD
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*::test_fails_under_faults FAILED*", "*::test_after PASSED*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'faultline("partial_read", max_bytes=0)',
            "*ScenarioError: faultline scenario 'partial_read': short_reads(max_bytes) must be a "
            "whole number >= 1, got 0",
        ),
        (
            'faultline("truncated_message", after_bytes=5, peer="nowhere")',
            "*ScenarioError: faultline scenario 'truncated_message': cannot read peer 'nowhere': "
            "it has no ':port' at the end; give peer as 'host:port'*",
        ),
        (
            'faultline("disconnect_mid_recycle", at="demo_nowhere:recycle")',
            "*TargetError: *demo_nowhere*",
        ),
        (
            'faultline("disconnect_mid_recycle", at="demo.recycle", times=0)',
            "*ScenarioError: faultline scenario 'disconnect_mid_recycle': arm('demo.recycle'): "
            "times must be a whole number >= 1 or None, got 0",
        ),
        (
            'faultline("timeout_mid_message")',
            "*ScenarioError: faultline scenario 'timeout_mid_message' needs parameter "
            "'after_bytes'*",
        ),
    ],
)
def test_bad_scenario_parameters_are_usage_errors(
    project: pytest.Pytester, marker: str, message: str
) -> None:
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_it():
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
