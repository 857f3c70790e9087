"""Sphinx configuration for pytest-faultline's documentation."""

from __future__ import annotations

project = "pytest-faultline"
author = "pytest-faultline developers"
copyright = "2026, the pytest-faultline developers"
extensions = ["sphinx.ext.autodoc"]
html_theme = "furo"
html_title = "pytest-faultline"
exclude_patterns = ["_build"]
nitpicky = False
autodoc_member_order = "bysource"
