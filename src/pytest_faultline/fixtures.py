"""The ``faultline`` fixture and the bookkeeping that ties a controller to its test item."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

# Imported with the plugin, not when a test first asks for the fixture: pytester's in-process
# runs drop modules first imported during a run, and a later run would then see two Action
# classes (the package keeps its attribute to the old module) and refuse every action.
from .controller import Faultline
from .decider import ReplayToken, derive_seed, test_fingerprint
from .errors import ReplayTokenError, ScenarioError, TargetError
from .report import TokenCache
from .settings import SETTINGS_KEY

__all__ = [
    "CONTROLLER_KEY",
    "LIVE",
    "TOKENS_KEY",
    "attempt_of",
    "example_key",
    "faultline",
    "scenario_requests",
]

CONTROLLER_KEY = pytest.StashKey[Faultline]()
TOKENS_KEY = pytest.StashKey[TokenCache]()
LIVE: set[Faultline] = set()  # controllers not yet closed, closed at unconfigure as a last resort


def scenario_requests(item: pytest.Item) -> list[tuple[str, dict[str, Any], str]]:
    """(name, params, where) for each marker on ``item`` and each ``--faultline`` name.

    Markers apply as a reader meets them: module, class, then function marks, each top to
    bottom (``iter_markers`` yields the reverse).
    """
    requests = []
    for mark in reversed(list(item.iter_markers("faultline"))):
        where = f"in @pytest.mark.faultline on {item.nodeid}"
        if len(mark.args) != 1 or not isinstance(mark.args[0], str):
            raise ScenarioError(
                f"@pytest.mark.faultline takes exactly one scenario name and keyword parameters, "
                f"got args {mark.args!r} {where}; stack markers to apply several scenarios"
            )
        requests.append((mark.args[0], dict(mark.kwargs), where))
    settings = item.config.stash[SETTINGS_KEY]
    for name in settings.scenarios:
        if all(name != r[0] for r in requests):
            requests.append((name, {}, "from --faultline"))
    return requests


def attempt_of(item: pytest.Item) -> int:
    """Which run of ``item`` this is: 1, then 2, 3, ... for reruns (pytest-rerunfailures and
    flaky count them in ``item.execution_count``)."""
    count = getattr(item, "execution_count", None)
    return count if isinstance(count, int) and count >= 1 else 1


def _wrap_hypothesis_examples(controller: Faultline, item: pytest.Item) -> None:
    """Run each Hypothesis example of a ``@given`` test in ``controller.example(...)``: fresh
    draws from a seed derived from the example, its own armings, events grouped under it."""
    if "hypothesis" not in sys.modules:  # never import it: a test using it already has
        return
    from hypothesis import is_hypothesis_test

    func = getattr(item, "obj", None)
    if func is None or not is_hypothesis_test(func):
        return
    handle = getattr(func, "__func__", func).hypothesis
    inner = handle.inner_test

    @functools.wraps(inner)
    def per_example(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        fixtures = getattr(item, "funcargs", {})  # the drawn arguments are the others
        drawn = {k: v for k, v in kwargs.items() if k not in fixtures}
        with controller.example(example_key(drawn)):
            return inner(*args, **kwargs)

    handle.inner_test = per_example
    controller.undo.push(lambda: setattr(handle, "inner_test", inner), "restore @given test")


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def example_key(drawn: dict[str, Any]) -> str:
    """A stable text for one example's drawn arguments (object addresses left out, so the same
    example gives the same key in another process)."""
    return _ADDRESS.sub("", ", ".join(f"{k}={drawn[k]!r}" for k in sorted(drawn)))


def _token_for(item: pytest.Item) -> ReplayToken | None:
    settings = item.config.stash[SETTINGS_KEY]
    fingerprint = test_fingerprint(item.nodeid)
    if settings.replay is not None and settings.replay.test == fingerprint:
        return settings.replay
    cache: TokenCache | None = item.config.stash.get(TOKENS_KEY, None)
    if cache is None or item.nodeid not in cache.tokens:
        return None
    try:
        token = ReplayToken.decode(cache.tokens[item.nodeid])
    except ReplayTokenError:  # an unreadable cached token is dropped, not fatal
        cache.update(item.nodeid, None)
        return None
    return token if token.test == fingerprint else None


@pytest.fixture
def faultline(request: pytest.FixtureRequest) -> Iterator[Faultline]:
    """One fault-injection controller for this test.

    ``faultline.seed`` / ``.random`` / ``.fake``: the test's seed (session seed mixed with the
    test id) and generators seeded from it. ``faultline.arm(target, action, times=, after=,
    probability=)``: make a point or ``"pkg.mod:Qual.name"`` raise, delay, stall or return.
    ``faultline.hits(target)``, ``faultline.events``, ``faultline.token()``. Scenarios from
    ``@pytest.mark.faultline`` and ``--faultline`` are applied before the test starts. Every
    patch is undone when the test ends, in reverse order, even if it fails or is interrupted.
    """
    item = request.node
    settings = item.config.stash[SETTINGS_KEY]
    for stale in list(LIVE):  # a crashed earlier test must not leak into this one
        LIVE.discard(stale)
        stale.close()
    attempt = attempt_of(item)
    token = _token_for(item)
    seed = derive_seed(settings.seed, item.nodeid)
    if attempt > 1 and settings.rerun_seed == "fresh":
        # A rerun that met the same faults would fail the same way: each attempt draws from
        # its own seed (printed, and its token replays it). An explicit --faultline-replay
        # keeps replaying; a token cached from the last run is for the first attempt only.
        seed = derive_seed(seed, f"attempt{attempt}")
        if settings.replay is None or token is not settings.replay:
            token = None
    controller = Faultline(seed=seed, nodeid=item.nodeid, token=token, settings=settings)
    controller.attempt = attempt
    LIVE.add(controller)
    item.stash[CONTROLLER_KEY] = controller
    _wrap_hypothesis_examples(controller, item)
    try:
        usage_error = None
        try:
            controller.apply_many(scenario_requests(item))
        except (ScenarioError, TargetError) as exc:
            usage_error = f"{type(exc).__name__}: {exc}"
        if usage_error is not None:
            # A usage error: show the message that says what to fix, once (failing outside the
            # except block, so no "During handling of the above exception" chain), and no
            # replay command: there is nothing to replay.
            controller.usage_error = True
            pytest.fail(usage_error, pytrace=False)
        yield controller
    finally:
        LIVE.discard(controller)
        controller.close()
