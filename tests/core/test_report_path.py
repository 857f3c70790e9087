"""``--faultline-report`` to a path that cannot be written is a usage error at the start."""

from __future__ import annotations

import json

import pytest

MESSAGE = (
    "ERROR: pytest-faultline: cannot write the JSON report to {path}: {reason}. Give "
    "--faultline-report (or FAULTLINE_REPORT, or faultline_report in the ini file) a file path "
    "in a directory you can write to"
)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("out", "it is a directory"),
        ("afile/report.json", "{root}/afile is a file, not a directory"),
        ("afile/deeper/report.json", "{root}/afile is a file, not a directory"),
    ],
)
def test_an_unwritable_report_path_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester, path: str, reason: str
) -> None:
    pytester.mkdir("out")
    pytester.path.joinpath("afile").write_text("not a directory\n")
    pytester.makepyfile("def test_x(): raise AssertionError('must not run')")
    result = pytester.runpytest("-p", "no:randomly", f"--faultline-report={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = MESSAGE.format(path=path, reason=reason.format(root=pytester.path))
    assert result.stderr.lines.count(expected) == 1
    assert "must not run" not in result.stdout.str()
    assert "Traceback" not in result.stderr.str()


def test_the_report_variable_is_checked_too(pytester: pytest.Pytester) -> None:
    pytester.mkdir("out")
    pytester.makepyfile("def test_x(): pass")
    pytester._monkeypatch.setenv("FAULTLINE_REPORT", "out")
    result = pytester.runpytest("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([MESSAGE.format(path="out", reason="it is a directory")])


def test_a_writable_report_path_is_left_as_it_was_until_the_run_ends(
    pytester: pytest.Pytester,
) -> None:
    report = pytester.path / "deep" / "er" / "report.json"
    pytester.makepyfile(
        f"""
        from pathlib import Path

        def test_x():
            assert not Path({str(report)!r}).exists()  # the check at start leaves no file
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--faultline-report=deep/er/report.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert json.loads(report.read_text())["tests"] == []


def test_the_report_goes_where_it_was_asked_even_if_a_test_changes_directory(
    pytester: pytest.Pytester,
) -> None:
    pytester.mkdir("elsewhere")
    pytester.makepyfile(
        """
        import os

        def test_x():
            os.chdir("elsewhere")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--faultline-report=report.json")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "report.json").exists()
    assert not (pytester.path / "elsewhere" / "report.json").exists()
