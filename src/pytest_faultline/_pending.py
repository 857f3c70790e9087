"""Clear errors for features announced in the API whose machinery is not in this version."""

from __future__ import annotations

from typing import NoReturn

from .errors import FaultlineError


def pending(feature: str, needs: str) -> NoReturn:
    raise FaultlineError(
        f"{feature} needs {needs}, which this version of pytest-faultline does not have yet; "
        f"see the CHANGELOG for what is available"
    )
