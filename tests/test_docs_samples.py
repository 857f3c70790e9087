"""The code samples shown in the docs are real files; run them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "docs" / "samples"


def test_docs_samples_pass(pytester: pytest.Pytester) -> None:
    for sample in SAMPLES.glob("*.py"):
        shutil.copy(sample, pytester.path / sample.name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, xfailed=1)
