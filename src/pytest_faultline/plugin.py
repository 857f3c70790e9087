"""pytest hooks of pytest-faultline (entry point ``faultline``). Hooks only: the machinery lives
in the other modules and is imported when a test first needs it."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from . import builtins, hookspecs
from .fixtures import CONTROLLER_KEY, LIVE, TOKENS_KEY, faultline
from .net.fixtures import fault_proxy
from .registry import REGISTRY
from .report import JsonReport, SessionReport, TokenCache, format_section, test_record
from .settings import (
    CACHE_CLEAR_OPTION,
    MARKER_LINE,
    SETTINGS_KEY,
    SWEEP_MARKER_LINE,
    Settings,
    add_options,
    resolve_settings,
)

__all__ = ["fault_proxy", "faultline"]

ROOT_KEY = pytest.StashKey[str]()  # the report root before this session (restored at its end)
SWEEP_ESTIMATED_KEY = pytest.StashKey[bool]()  # xdist: the sweep's estimate was printed
del builtins  # imported for its side effect: the built-in scenarios register before conftests

SESSION_PLUGIN = "faultline-session"
FIXTURE_NAME = "faultline"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("faultline_list"):
        # Like --markers: configure (so conftests and plugins register their scenarios), print,
        # and exit without collecting.
        from _pytest.main import wrap_session

        return wrap_session(config, _list_scenarios)
    return None


def _list_scenarios(config: pytest.Config, session: pytest.Session) -> int:
    tw = config.get_terminal_writer()
    for sc in REGISTRY:
        tw.line(f"{sc.name}({sc.signature_text()})", bold=True)
        tw.line(f"    {sc.doc or '(no description)'}")
        tw.line(f"    defined in {sc.origin}")
    return 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_LINE)
    config.addinivalue_line("markers", SWEEP_MARKER_LINE)
    shared = getattr(config, "workerinput", {}).get("faultline_seed")
    settings = resolve_settings(config, shared_seed=shared)
    config.stash[SETTINGS_KEY] = settings
    from . import _sites  # light: report sites relative to the rootdir

    config.stash[ROOT_KEY] = _sites.set_root(str(config.rootpath))
    config.hook.pytest_faultline_scenarios.call_historic(kwargs={"registry": REGISTRY})
    tokens = TokenCache(config, clear=settings.cache_clear)
    config.stash[TOKENS_KEY] = tokens
    if not hasattr(config, "workerinput"):  # xdist workers leave reporting to the controller
        json_report = None
        if settings.report is not None:
            json_report = JsonReport(settings.report, settings.seed)
        config.pluginmanager.register(SessionReport(config, tokens, json_report), SESSION_PLUGIN)
    if hasattr(config.hook, "pytest_asyncio_loop_factories"):  # pytest-asyncio >= 1.4
        from .aio.asyncio_plugin import ASYNCIO_PLUGIN, LoopFactories

        config.pluginmanager.register(LoopFactories(settings.scenarios), ASYNCIO_PLUGIN)
    if settings.lockdep:
        from .lockorder.session import LOCKDEP_PLUGIN, LockdepPlugin

        config.pluginmanager.register(LockdepPlugin(config), LOCKDEP_PLUGIN)
    from .sweep.session import start_live_progress  # light: pytest only

    start_live_progress(config)
    # The thread scheduler (4 ms) loads with the plugin, not in the first test that explores:
    # that test would pay it inside its own time (benchmarks/bench_sched.py, cold start).
    from . import sched

    del sched


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # xdist: every worker uses the controller's session seed, so a test's seed does not depend
    # on which worker ran it.
    node.workerinput["faultline_seed"] = node.config.stash[SETTINGS_KEY].seed


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    # xdist: the controller collects nothing; the first worker's collection gives the count.
    config = node.config
    settings = config.stash[SETTINGS_KEY]
    if not settings.sweep or config.stash.get(SWEEP_ESTIMATED_KEY, False):
        return
    config.stash[SWEEP_ESTIMATED_KEY] = True
    from .sweep.session import estimate_distributed

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        workers = len(config.getoption("tx", None) or []) or 1
        reporter.write_line(estimate_distributed(len(ids), workers, settings))


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[SETTINGS_KEY]
    line = f"faultline: seed={settings.seed} ({settings.seed_origin}), backend={settings.backend}"
    if settings.backend == "toxiproxy":
        line += f" at {settings.toxiproxy_url or 'http://127.0.0.1:8474'}"
    lines = [line]
    if settings.replay is not None:
        lines.append(f"faultline: replaying token {settings.replay.encode()}")
    if settings.scenarios:
        lines.append(f"faultline: scenarios for every test: {', '.join(settings.scenarios)}")
    cached = config.stash[TOKENS_KEY].tokens
    if cached and settings.replay is None:
        lines.append(
            f"faultline: replaying the cached token of {len(cached)} earlier failing test(s) "
            f"first ({CACHE_CLEAR_OPTION} forgets them)"
        )
    return lines


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.stash[SETTINGS_KEY].backend == "toxiproxy":
        from .net.proxies import forget_unreachable

        forget_unreachable()
    if session.config.pluginmanager.has_plugin("dsession"):
        # The xdist controller collects nothing: check here, once, with the scenarios of the
        # conftests and plugins loaded at start, before any worker runs a test.
        _check_session_scenarios(session.config.stash[SETTINGS_KEY])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings: Settings = config.stash[SETTINGS_KEY]
    _check_session_scenarios(settings)
    if settings.sweep:
        from .sweep.session import mark_swept

        mark_swept(config, items, settings)
    apply_all = bool(settings.scenarios)
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)
        if fixturenames is None or FIXTURE_NAME in fixturenames:
            continue
        if apply_all or item.get_closest_marker("faultline") is not None:
            # First, so the scenarios are active before the test's other fixtures run.
            fixturenames.insert(0, FIXTURE_NAME)
    cached = config.stash[TOKENS_KEY].tokens
    if cached:
        # Like --failed-first, for tests that failed under faults: replay their tokens first.
        items.sort(key=lambda it: it.nodeid not in cached)


def _check_session_scenarios(settings: Settings) -> None:
    """An unknown ``--faultline`` name is one usage error before any test runs (not one per
    test). Checked after collection, when every conftest has registered its scenarios."""
    from .errors import ScenarioError

    for name in settings.scenarios:
        try:
            REGISTRY.get(name)
        except ScenarioError as exc:
            raise pytest.UsageError(f"pytest-faultline: --faultline: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    __tracebackhide__ = True
    controller = pyfuncitem.stash.get(CONTROLLER_KEY, None)
    if controller is None:
        return None
    controller.body_started = True  # from now on, nothing can wrap the body any more
    if not controller.wraps_body:
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    controller.run_body(lambda: pyfuncitem.obj(**kwargs))
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    controller = item.stash.get(CONTROLLER_KEY, None)
    if controller is None:
        return report
    record = test_record(controller)
    report.faultline = record  # type: ignore[attr-defined]  # travels to the xdist controller
    if report.failed and not controller.usage_error:
        report.sections.append((f"faultline ({report.when})", format_section(record)))
        item.config.hook.pytest_faultline_failure(item=item, token=record["token"], record=record)
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    from .sweep.session import stop_live_progress

    stop_live_progress(config)
    previous_root = config.stash.get(ROOT_KEY, None)
    if previous_root is not None:
        from . import _sites

        _sites.set_root(previous_root)
    for controller in list(LIVE):  # an interrupted session must still undo every patch
        LIVE.discard(controller)
        controller.close()
    session_report = config.pluginmanager.get_plugin(SESSION_PLUGIN)
    if session_report is not None:
        config.pluginmanager.unregister(session_report)
