"""A small module the tests wrap by import path."""

from __future__ import annotations


def send(data: bytes) -> int:
    return len(data)


class Base:
    def close(self) -> str:
        return "closed"


class Conn(Base):
    def recycle(self, reason: str) -> str:
        return f"recycled: {reason}"

    @staticmethod
    def version() -> int:
        return 2

    @classmethod
    def make(cls) -> Conn:
        return cls()

    @property
    def peer(self) -> str:
        return "127.0.0.1"
