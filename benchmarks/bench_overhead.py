"""What the installed but unused plugin adds to a 2,000-test suite.

Runs a generated suite of 2,000 trivial tests with the plugin loaded and with
``-p no:faultline``, alternating, and compares median wall times.
Target: < 2% slower. Prints ``plugin overhead: X%``.

``--socket-calls``: what a test's socket fault layer (``faultline.sockets``, installed with no
fault in force) adds to one socket call on a loopback TCP connection, without and with the fault
sweep's observer set, alternating with unpatched rounds in one run. Run it with
``PYTHONPATH=<checkout>/src`` to compare two versions. Prints ``socket layer per call: X ns``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_PERCENT = 2.0
FILES = 20
TESTS_PER_FILE = 100
ROUNDS = 7


def make_suite(root: Path) -> None:
    for f in range(FILES):
        body = "\n".join(
            f"def test_{f}_{t}():\n    assert {t} + 1 > {t}\n" for t in range(TESTS_PER_FILE)
        )
        (root / f"test_gen_{f}.py").write_text(body)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


def run(root: Path, *extra: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *extra],
        cwd=root,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or f"{FILES * TESTS_PER_FILE} passed" not in proc.stdout:
        raise SystemExit(f"generated suite did not pass:\n{proc.stdout[-2000:]}\n{proc.stderr}")
    return elapsed


SOCKET_CALLS = 5_000
SOCKET_ROUNDS = 41


def socket_round(a: socket.socket, b: socket.socket) -> float:
    """Seconds per call of ``SOCKET_CALLS`` one-byte send/recv pairs (one call is half a pair)."""
    send, recv = a.send, b.recv
    start = time.perf_counter()
    for _ in range(SOCKET_CALLS):
        send(b"x")
        recv(1)
    return (time.perf_counter() - start) / (2 * SOCKET_CALLS)


def python_frames(call: object) -> int:
    """Python frames entered by one ``call()`` (C calls not counted)."""
    import sys

    entered = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal entered
        if event == "call":
            entered += 1

    sys.setprofile(profile)
    try:
        call()  # type: ignore[operator]
    finally:
        sys.setprofile(None)
    return entered - 1  # not the lambda that makes the call


def socket_calls() -> None:
    from pytest_faultline.controller import Faultline
    from pytest_faultline.net import _socket_patches

    def passing(method, sock, call, args, name_of):  # type: ignore[no-untyped-def]
        return call(sock, *args)

    listener = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(listener.getsockname())
    b, _ = listener.accept()
    listener.close()
    layer: list[float] = []  # per round: patched minus unpatched, measured side by side
    observed: list[float] = []
    bare: list[float] = []
    fl = Faultline(seed=1, nodeid="bench")
    try:
        socket_round(a, b)  # warm up
        for _ in range(SOCKET_ROUNDS):
            fl.close()
            before = socket_round(a, b)
            fl = Faultline(seed=1, nodeid="bench")
            assert fl.sockets.faults == []  # the layer is installed, no fault in force
            if not bare:
                socket_round(a, b)  # the layer has seen both sockets: the steady state
                a.send(b"x")
                frames = python_frames(lambda: b.recv(1))
            plain = socket_round(a, b)
            previous = _socket_patches.set_observer(passing)
            try:
                seen = socket_round(a, b)
            finally:
                _socket_patches.set_observer(previous)
            fl.close()
            after = socket_round(a, b)
            base = (before + after) / 2
            bare.append(base)
            layer.append(plain - base)
            observed.append(seen - base)
    finally:
        fl.close()
        a.close()
        b.close()
    ns = 1e9
    print(f"Python frames per patched socket call: {frames} (no fault, no observer)")
    print(f"socket call unpatched: {statistics.median(bare) * ns:.0f} ns")
    print(
        f"socket layer per call: {statistics.median(layer) * ns:.0f} ns "
        f"(no fault, no observer; median of {SOCKET_ROUNDS} paired rounds)"
    )
    print(f"with the sweep's observer set: {statistics.median(observed) * ns:.0f} ns per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--socket-calls",
        action="store_true",
        help="measure the socket fault layer's cost per call instead of the plugin's",
    )
    if parser.parse_args().socket_calls:
        socket_calls()
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_suite(root)
        run(root)  # warm the file system cache and byte-compile
        with_plugin, without = [], []
        for _ in range(ROUNDS):
            with_plugin.append(run(root))
            without.append(run(root, "-p", "no:faultline"))
    on, off = statistics.median(with_plugin), statistics.median(without)
    print(f"{FILES * TESTS_PER_FILE} tests: with plugin {on:.3f} s, without {off:.3f} s (medians)")
    print(f"plugin overhead: {(on / off - 1) * 100:.2f}% (target < {TARGET_PERCENT}%)")


if __name__ == "__main__":
    main()
