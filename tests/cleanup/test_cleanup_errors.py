"""Bad arguments to defer() say what was wrong and how to fix it."""

from __future__ import annotations

import re
from typing import Any

import cleanup_apps
import pytest

from pytest_faultline import FaultlineError, TargetError
from pytest_faultline.controller import Faultline


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"target": "app.cleanup"},
            "defer('app.cleanup'): a point name marks a place, not a call, and cannot be "
            "deferred; defer() takes a function or method, or its path 'package.module:"
            "Qualified.name' (for example 'myapp.registry:Registry.forget')",
        ),
        (
            {"target": cleanup_apps.expire_session, "seconds": 0},
            "defer('cleanup_apps:expire_session'): seconds must be a number > 0 (seconds of "
            "the test's clock), got 0",
        ),
        (
            {"target": cleanup_apps.expire_session, "seconds": True},
            "defer('cleanup_apps:expire_session'): seconds must be a number > 0 (seconds of "
            "the test's clock), got True",
        ),
        (
            {"target": cleanup_apps.expire_session, "until": 3},
            "defer(until=3) is not understood; until is a point name (a place in the code), a "
            "'package.module:Qualified.name' path or a function: held calls are released each "
            "time it returns",
        ),
        ({"target": 42}, "defer() cannot hold calls to 42; defer() takes a function"),
    ],
)
def test_bad_defer_arguments(faultline: Faultline, kwargs: dict[str, Any], message: str) -> None:
    # Any: the cases pass deliberately wrong types, which defer() must refuse at run time.
    target = kwargs.pop("target")
    with pytest.raises(FaultlineError, match=re.escape(message)):
        faultline.defer(target, **kwargs)


def test_local_functions_cannot_be_deferred(faultline: Faultline) -> None:
    def local() -> None:
        pass

    with pytest.raises(TargetError, match="it is local or anonymous"):
        faultline.defer(local)


def test_unknown_until_target_is_named(faultline: Faultline) -> None:
    with pytest.raises(TargetError, match="target 'cleanup_apps:nope': 'cleanup_apps' has no"):
        faultline.defer(cleanup_apps.expire_session, until="cleanup_apps:nope")
