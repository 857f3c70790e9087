"""Load with ``-p pytest_faultline.lockorder.lockdep_plugin`` to get ``--faultline-lockdep``
from a pytest-faultline whose main plugin does not offer it yet. Once ``settings`` defines
``LOCKDEP_OPTION`` (the main plugin registers the option and the session plugin itself), this
module does nothing, so command lines and conftests that name it keep working."""

from __future__ import annotations

import pytest

from .. import settings as _settings
from .session import LOCKDEP_DEST, LOCKDEP_HELP, LOCKDEP_OPTION, LOCKDEP_PLUGIN, LockdepPlugin

MAIN_PLUGIN_HAS_LOCKDEP = hasattr(_settings, "LOCKDEP_OPTION")


def pytest_addoption(parser: pytest.Parser) -> None:
    if MAIN_PLUGIN_HAS_LOCKDEP:
        return
    group = parser.getgroup("faultline", "fault injection (pytest-faultline)")
    group.addoption(
        LOCKDEP_OPTION, action="store_true", dest=LOCKDEP_DEST, default=False, help=LOCKDEP_HELP
    )


def pytest_configure(config: pytest.Config) -> None:
    if MAIN_PLUGIN_HAS_LOCKDEP or not config.getoption(LOCKDEP_DEST, False):
        return
    config.pluginmanager.register(LockdepPlugin(config), LOCKDEP_PLUGIN)
