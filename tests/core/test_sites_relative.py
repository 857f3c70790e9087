"""Sites in reports are relative to the rootdir (``_sites.relative``); the answer is kept per
absolute file name, and follows the root when a session sets another one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_faultline import _sites


def test_a_site_is_relative_to_the_current_root(tmp_path: Path) -> None:
    inside = str(tmp_path / "pkg" / "mod.py")
    previous = _sites.set_root(str(tmp_path))
    try:
        assert _sites.relative(inside) == os.path.join("pkg", "mod.py")
        assert _sites.relative(inside) == os.path.join("pkg", "mod.py")  # from the cache
        _sites.set_root(str(tmp_path / "pkg"))  # a nested session: the cache must not answer
        assert _sites.relative(inside) == "mod.py"
        _sites.set_root(str(tmp_path / "elsewhere"))
        assert _sites.relative(inside) == inside  # outside the root: as it is
    finally:
        _sites.set_root(previous)


def test_a_relative_file_name_follows_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    previous = _sites.set_root(str(tmp_path))
    try:
        monkeypatch.chdir(tmp_path)
        assert _sites.relative("mod.py") == "mod.py"
        monkeypatch.chdir(tmp_path / "a")
        assert _sites.relative("mod.py") == os.path.join("a", "mod.py")
    finally:
        _sites.set_root(previous)
