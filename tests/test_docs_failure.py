"""The failure output shown in the README and the tutorial is what the plugin prints.

``docs/samples/failure/output.txt`` is generated from ``docs/samples/failure``: run this file
with ``FAULTLINE_REGENERATE_DOCS=1`` to rewrite it (then paste it into the README's block);
without that variable the test checks both against a fresh run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .test_docs_samples import copy_topic

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "samples" / "failure" / "output.txt"
SEED = "2308997766"
TIMES = re.compile(r" *\d+\.\d{3} ms")


def shown_failure(stdout: list[str]) -> str:
    """The lines a reader needs: the error, where it was raised, and the faultline section."""
    error = next(i for i, line in enumerate(stdout) if line.startswith("E "))
    start = next(i for i, line in enumerate(stdout) if " faultline (call) " in line)
    end = next(i for i in range(start, len(stdout)) if stdout[i].startswith("=" * 5))
    return "\n".join([*stdout[error : error + 3], *stdout[start:end]]) + "\n"


def normalized(text: str) -> str:
    return TIMES.sub(" N ms", text)


def test_shown_failure_output_is_what_pytest_prints(pytester: pytest.Pytester) -> None:
    copy_topic("failure", pytester.path)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", f"--faultline-seed={SEED}"
    )
    result.assert_outcomes(failed=1)
    fresh = shown_failure(result.stdout.lines)
    if os.environ.get("FAULTLINE_REGENERATE_DOCS"):
        OUTPUT.write_text(fresh, encoding="utf-8")
    assert normalized(OUTPUT.read_text(encoding="utf-8")) == normalized(fresh)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert normalized(OUTPUT.read_text(encoding="utf-8")) in normalized(readme)
