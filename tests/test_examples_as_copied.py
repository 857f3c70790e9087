"""The example projects run as a user who copied one would run it: ``cd examples/NAME && pytest``,
with the plugins people already have (pytest-asyncio, pytest-xdist, pytest-randomly,
pytest-timeout) loaded. Their config holds only what they need, so a warning another plugin
raises at start cannot turn into an error there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "pyproject.toml").exists())
# What an example's pytest config needs: its sources, its tests, strict xfails (the buggy case
# must fail), and strict arming (a typo'd target must fail). Nothing that depends on which
# other plugins the user has, such as filterwarnings = error.
NEEDED_KEYS = {"pythonpath", "testpaths", "xfail_strict", "faultline_strict"}
BUGGY_RAISES = "buggy_fails(raises="


@pytest.mark.parametrize("name", NAMES)
def test_example_config_holds_only_what_it_needs(name: str) -> None:
    data = tomllib.loads((EXAMPLES / name / "pyproject.toml").read_text())
    ini = data["tool"]["pytest"]["ini_options"]
    assert set(ini) == NEEDED_KEYS, f"{name}: keep only {sorted(NEEDED_KEYS)} in its config"
    assert ini["xfail_strict"] is True
    assert ini["faultline_strict"] is True


@pytest.mark.parametrize("name", NAMES)
def test_every_buggy_case_names_the_failure_it_expects(name: str) -> None:
    tests = EXAMPLES / name / "tests"
    for path in sorted(tests.glob("test_*.py")):
        text = path.read_text()
        # Each test taking the 'implementation' fixture carries buggy_fails(raises=...).
        for chunk in text.split("\ndef test_")[1:]:
            signature = chunk.split(")", 1)[0]
            if "implementation" in signature.replace("any_implementation", ""):
                head = text[: text.index("\ndef test_" + chunk.split("(", 1)[0] + "(")]
                decorators = head.rsplit("\n\n", 1)[-1]
                assert BUGGY_RAISES in decorators, f"{path.name}::test_{signature}"


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_as_copied_beside_common_plugins(name: str, tmp_path: Path) -> None:
    pytest.importorskip("pytest_asyncio")  # the plugin whose start-up warning broke them
    copy = tmp_path / name
    shutil.copytree(
        EXAMPLES / name, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache")
    )
    # The copy's own rootdir and config, as in 'cd examples/NAME && pytest': every installed
    # plugin loads as it would for the user.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert f"rootdir: {copy}" in out
    plugins = next(line for line in out.splitlines() if line.startswith("plugins: "))
    assert "asyncio-" in plugins
    assert "INTERNALERROR" not in out
    assert " xfailed" in result.stdout.splitlines()[-1]  # stderr may end with a warning


def test_a_typo_or_another_failure_is_not_a_catch(pytester: pytest.Pytester) -> None:
    # The buggy case's strict xfail accepts the failure the incident produces and nothing else.
    shutil.copytree(
        EXAMPLES / "condor_alive",
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
    )
    faults = pytester.path / "tests" / "test_alive_faults.py"
    text = faults.read_text()
    typo = text.replace(
        '@pytest.mark.faultline("timeout_mid_message", after_bytes=COMMAND_BYTES)',
        '@pytest.mark.faultline("timeout_mid_mesage", after_bytes=COMMAND_BYTES)',
    )
    assert typo != text
    faults.write_text(typo)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "tests/test_alive_faults.py"
    )
    # A typo in the scenario name: both cases error at setup; the buggy one is not "caught".
    result.stdout.fnmatch_lines(
        [
            "ERROR tests/test_alive_faults.py::test_payload_times_out_after_the_command[[]fixed]*",
            "ERROR tests/test_alive_faults.py::test_payload_times_out_after_the_command[[]buggy]*",
        ]
    )
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] == 2
    assert outcomes["xfailed"] == 2  # the two other buggy cases, still caught

    # A buggy case that fails some other way than the incident's is a failure, not a catch.
    faults.write_text(
        text.replace(
            "@pytest.mark.buggy_fails(raises=AssertionError)\ndef test_proxy_holds_the_payload",
            "@pytest.mark.buggy_fails(raises=KeyError)\ndef test_proxy_holds_the_payload",
        )
    )
    other = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "tests/test_alive_faults.py"
    )
    other.stdout.fnmatch_lines(
        ["FAILED tests/test_alive_faults.py::test_proxy_holds_the_payload[[]buggy]*"]
    )
    assert other.parseoutcomes()["xfailed"] == 2
