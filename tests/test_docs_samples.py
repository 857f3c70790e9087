"""The code samples shown in the docs are real files; run them.

Each ``docs/samples/<topic>/`` directory (and the tutorial's files at the top of
``docs/samples``) runs in its own pytest subprocess with exact outcome counts, so a sample that
breaks, or a test that stops being collected, fails here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "docs" / "samples"

# topic -> exact outcomes of its run ("." is the tutorial at the top of docs/samples)
EXPECTED: dict[str, dict[str, int]] = {
    ".": {"passed": 3, "xfailed": 1},
    "failcall": {"passed": 2},
    "lockorder": {"passed": 3, "xfailed": 2},
    "sched": {"passed": 2, "xfailed": 2},
    "sockets": {"passed": 6, "xfailed": 1},
}


def copy_topic(topic: str, dest: Path) -> None:
    source = SAMPLES / topic
    for sample in sorted(source.glob("*.py")):
        shutil.copy(sample, dest / sample.name)


def test_every_topic_is_listed() -> None:
    topics = {p.name for p in SAMPLES.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert topics | {"."} == set(EXPECTED), "add the new docs/samples topic to EXPECTED"


@pytest.mark.parametrize("topic", sorted(EXPECTED))
def test_docs_samples_pass(pytester: pytest.Pytester, topic: str) -> None:
    copy_topic(topic, pytester.path)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-W", "error", "-q"
    )
    result.assert_outcomes(**EXPECTED[topic])
