"""Fixtures of the asyncio task-schedule tests."""

from __future__ import annotations

import pytest

from pytest_faultline.decider import Decider, derive_seed


@pytest.fixture(autouse=True)
def _search_not_cached_replay(request: pytest.FixtureRequest) -> None:
    """These tests assert what a search does. A token cached by an earlier failure of the same
    test would turn the search into a one-schedule replay, so the test's seed is used afresh
    (``--faultline-replay`` still replays)."""
    if "faultline" not in request.fixturenames:
        return
    fl = request.getfixturevalue("faultline")
    if fl.decider.token_in is not None and fl.settings.replay is None:
        fl.adopt_decider(
            Decider(derive_seed(fl.settings.seed, request.node.nodeid), test=fl.decider.test)
        )
