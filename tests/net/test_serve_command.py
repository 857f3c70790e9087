"""``faultline serve``: bad ``--host`` and ``--port`` values are clear errors, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_faultline.cli import main
from pytest_faultline.net.server import serve

from .proxy_support import BOUND_S

SRC = Path(__file__).resolve().parents[2] / "src"
PORT_MESSAGE = "must be a whole number from 0 to 65535 (0: any free port), got {!r}"


@pytest.mark.parametrize("port", ["70000", "-1", "abc", "80.5", ""])
def test_a_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", port])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"faultline serve: error: argument --port: {PORT_MESSAGE.format(port)}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("127.0.0.1", 70000, f"--port {PORT_MESSAGE.format(70000)}"),
        ("127.0.0.1:8474", 0, "--host '127.0.0.1:8474' is not an address: give the host alone"),
        (" ", 0, "--host is empty; give an address such as 127.0.0.1"),
        # TEST-NET-1 (RFC 5737) is no address of this machine: bind fails, nothing is sent.
        ("192.0.2.1", 0, "cannot listen on 192.0.2.1:0: Cannot assign requested address; --host"),
    ],
)
def test_a_bad_host_or_port_exits_2_with_the_reason(
    host: str, port: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve(host, port) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1  # one line, no traceback


def test_the_command_exits_2_without_a_traceback() -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for args in (["--port", "70000"], ["--host", "127.0.0.1:80", "--port", "0"]):
        result = subprocess.run(
            [sys.executable, "-m", "pytest_faultline.cli", "serve", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=BOUND_S * 2,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "faultline serve" in result.stderr
