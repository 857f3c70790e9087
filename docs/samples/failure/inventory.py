"""The failure sample's code under test: a stock counter that writes through a flaky store."""

from __future__ import annotations

from pytest_faultline import point


class Store:
    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def write(self, key: str, value: int) -> None:
        point("store.write", key=key)
        self.data[key] = value


def restock(store: Store, counts: dict[str, int]) -> None:
    """Naive: one failed write loses the rest of the batch."""
    for key, value in counts.items():
        store.write(key, value)
