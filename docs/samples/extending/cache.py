"""The extending page's code under test: a cache that trusts what its backend returns."""

from __future__ import annotations


def fetch(key: str) -> bytes:
    return f"value of {key}".encode()  # stands for a network round trip


def get_naive(cache: dict[str, bytes], key: str) -> bytes:
    if key not in cache:
        cache[key] = fetch(key)
    return cache[key]


def get_checked(cache: dict[str, bytes], key: str) -> bytes:
    """Refuses a reply that is not for ``key`` and fetches again (once)."""
    for _ in range(2):
        value = fetch(key)
        if value == f"value of {key}".encode():
            cache[key] = value
            return value
    raise ConnectionError(f"backend keeps answering garbage for {key!r}")
