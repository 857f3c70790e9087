"""Shared test configuration. ``pytester`` comes from ``-p pytester`` in pyproject's addopts."""
