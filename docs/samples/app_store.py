"""A tiny key-value client with a fault point where it talks to the database."""

from __future__ import annotations

from pytest_faultline import point


class Store:
    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def write(self, key: str, value: int) -> None:
        point("store.write", key=key)  # a no-op unless a test arms it
        self.data[key] = value


def save_all(store: Store, items: dict[str, int]) -> None:
    """Naive: one failed write loses the rest."""
    for key, value in items.items():
        store.write(key, value)


def save_all_retrying(store: Store, items: dict[str, int], attempts: int = 3) -> None:
    """Retries each write a few times before giving up."""
    for key, value in items.items():
        for attempt in range(attempts):
            try:
                store.write(key, value)
                break
            except ConnectionError:
                if attempt == attempts - 1:
                    raise
