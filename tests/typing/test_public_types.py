"""The fixture's features reveal their real types to a user's type checker (no ``Any``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).with_name("reveal_user.txt")

pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")


def test_every_feature_reveals_a_real_type(tmp_path: Path) -> None:
    user_file = tmp_path / "test_user.py"
    shutil.copy(SAMPLE, user_file)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(user_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    revealed = re.findall(r'Revealed type is "([^"]+)"', done.stdout)
    calls = SAMPLE.read_text().count("reveal_type(")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(revealed) == calls, done.stdout
    assert not [t for t in revealed if "Any" in t], done.stdout
    assert "pytest_faultline.net.protocol.Proxy" in revealed
    assert "pytest_faultline.sched.explore.Exploration" in revealed
