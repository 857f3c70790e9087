"""The installed distribution: pytest finds the plugin through its entry point, shows its marker
and options, and ``import pytest_faultline`` stays cheap enough for production code."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from pytest_faultline.settings import MARKER_LINE, OPTIONS

ENTRY_POINT_GROUP = "pytest11"
ENTRY_POINT_NAME = "faultline"
PLUGIN_MODULE = "pytest_faultline.plugin"
HEAVY_MODULES = ("pytest", "_pytest", "faker", "freezegun", "toxiproxy", "requests")


def test_pytest11_entry_point_is_registered() -> None:
    points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    ours = [p for p in points if p.name == ENTRY_POINT_NAME]
    assert [p.value for p in ours] == [PLUGIN_MODULE]
    assert ours[0].dist is not None
    assert ours[0].dist.metadata["Name"] == "pytest-faultline"


def test_entry_point_loads_the_plugin_module() -> None:
    (point,) = (
        p for p in metadata.entry_points(group=ENTRY_POINT_GROUP) if p.name == ENTRY_POINT_NAME
    )
    module = point.load()
    assert module.__name__ == PLUGIN_MODULE
    assert callable(module.pytest_addoption)


def test_markers_lists_the_faultline_marker_through_the_entry_point(
    pytester: pytest.Pytester,
) -> None:
    # A subprocess loads plugins the way users get them: setuptools entry points, no -p.
    result = pytester.runpytest_subprocess("--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"@pytest.mark.{MARKER_LINE}"])


def test_marker_is_gone_when_the_plugin_is_disabled_by_its_entry_point_name(
    pytester: pytest.Pytester,
) -> None:
    # The other side: the marker above really comes from the plugin registered as "faultline".
    result = pytester.runpytest_subprocess("-p", f"no:{ENTRY_POINT_NAME}", "--markers")
    assert result.ret == 0
    result.stdout.no_fnmatch_line("@pytest.mark.faultline(*")


def test_help_shows_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["fault injection (pytest-faultline):"])
    out = result.stdout.str()
    flags = [spec.flag for spec in OPTIONS] + ["--faultline-summary", "--faultline-list"]
    missing = [flag for flag in flags if f"  {flag}" not in out]
    assert not missing, f"options not in --help: {missing}"
    ini_keys = [spec.ini for spec in OPTIONS if spec.ini] + ["faultline_summary"]
    missing = [key for key in ini_keys if f"  {key} " not in out]
    assert not missing, f"ini keys not in --help: {missing}"


def test_help_has_no_faultline_options_when_the_plugin_is_disabled(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess("-p", f"no:{ENTRY_POINT_NAME}", "--help")
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*--faultline-seed*")


def _modules_after(statement: str) -> list[str]:
    """Top-level modules a fresh interpreter gains by running ``statement``."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(proc.stdout))


def test_import_is_light() -> None:
    # Production code imports the package for point(): no test framework, no fakes, no clients.
    loaded = _modules_after("import pytest_faultline\nfrom pytest_faultline import point")
    heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY_MODULES))
    assert heavy == [], f"import pytest_faultline pulled in {heavy}"
    assert "pytest_faultline.plugin" not in loaded


# Everything ``from pytest_faultline import point`` may load: the package, the point itself and
# the exception classes (``__future__`` is what ``from __future__ import annotations`` loads).
# Not typing, inspect, dataclasses, re or the scenario registry: together they made the import
# cost ~15 ms in production code that only carries points.
POINT_MODULES = {
    "__future__",
    "pytest_faultline",
    "pytest_faultline._points",
    "pytest_faultline.errors",
}


def test_point_loads_only_the_point_and_the_errors() -> None:
    loaded = set(_modules_after("from pytest_faultline import point"))
    assert loaded - POINT_MODULES == set(), (
        f"from pytest_faultline import point loaded {sorted(loaded - POINT_MODULES)}"
    )
    assert "pytest_faultline._points" in loaded


def test_the_lazy_names_still_load_on_use() -> None:
    # Light does not mean missing: the registry and the types come on first use.
    loaded = _modules_after(
        "import pytest_faultline\n"
        "assert callable(pytest_faultline.scenario)\n"
        "assert pytest_faultline.REGISTRY is not None\n"
        "from pytest_faultline import ExploreOptions, scenario"
    )
    assert {"pytest_faultline.registry", "pytest_faultline.exploring"} <= set(loaded)


def test_import_light_check_can_see_heavy_imports() -> None:
    # The checks above would pass vacuously if the probe could not see imports at all.
    loaded = _modules_after("import pytest_faultline.plugin")
    assert {"pytest", "_pytest"} <= {m.split(".")[0] for m in loaded}
    assert set(loaded) - POINT_MODULES
