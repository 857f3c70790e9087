"""Load with ``-p pytest_faultline.lockorder.lockdep_plugin`` to get ``--faultline-lockdep``
where the main plugin does not register it itself. Harmless when it does."""

from __future__ import annotations

import pytest

from .session import LOCKDEP_DEST, LOCKDEP_HELP, LOCKDEP_OPTION, LOCKDEP_PLUGIN, LockdepPlugin


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultline", "fault injection (pytest-faultline)")
    if any(LOCKDEP_OPTION in option.names() for option in group.options):
        return
    group.addoption(
        LOCKDEP_OPTION, action="store_true", dest=LOCKDEP_DEST, default=False, help=LOCKDEP_HELP
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(LOCKDEP_DEST, False) and not config.pluginmanager.has_plugin(
        LOCKDEP_PLUGIN
    ):
        config.pluginmanager.register(LockdepPlugin(config), LOCKDEP_PLUGIN)
