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
    "clock": {"passed": 1},
    "extending": {"passed": 3, "xfailed": 1},
    "failcall": {"passed": 2},
    "failure": {"failed": 1},
    "hooks": {"passed": 1},
    "lockorder": {"passed": 3, "xfailed": 2},
    "proxy": {"passed": 1},
    "sched": {"passed": 3, "xfailed": 3},
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
    result = run_samples(pytester)
    result.assert_outcomes(**EXPECTED[topic])


def run_samples(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-W", "error", "-q"
    )


def test_hooks_sample_reports_a_failing_tests_token(pytester: pytest.Pytester) -> None:
    # The hooks page's failure hook only runs when a test fails under faults: add one.
    copy_topic("hooks", pytester.path)
    pytester.makepyfile(
        test_fails="""
        from disk import write

        def test_disk_down(faultline):
            faultline.arm("disk.write", OSError("disk down"))
            write([], "hello")
        """
    )
    result = run_samples(pytester)
    result.assert_outcomes(passed=EXPECTED["hooks"]["passed"], failed=1)
    lines = (pytester.path / "faultline-tokens.txt").read_text().splitlines()
    assert len(lines) == 1
    nodeid, token = lines[0].split(" ")
    assert nodeid == "test_fails.py::test_disk_down"
    assert token.startswith("fl1.")
    result.stdout.fnmatch_lines([f"*--faultline-replay={token}*"])
