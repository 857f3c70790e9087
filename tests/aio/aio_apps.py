"""Small asyncio programs with the races of the aio tests, each in a naive and a fixed form.

A module of its own because ``preempt="awaits"`` recompiles the coroutine functions of named
modules (the race in :class:`Account` spans only awaits that never suspend).
"""

from __future__ import annotations

import asyncio
import struct


class Account:
    """A balance behind an async storage API whose calls complete without suspending (an
    in-memory cache in front of a database, say): plain asyncio never switches inside
    ``withdraw``, so the check-then-act race stays latent until every await is a point."""

    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.lock = asyncio.Lock()

    async def read(self) -> int:
        return self.balance

    async def write(self, value: int) -> None:
        self.balance = value

    async def withdraw(self, amount: int) -> bool:
        balance = await self.read()
        if balance < amount:
            return False
        await self.write(balance - amount)
        return True

    async def withdraw_fixed(self, amount: int) -> bool:
        async with self.lock:
            balance = await self.read()
            if balance < amount:
                return False
            await self.write(balance - amount)
            return True


HEADER = struct.Struct("!I")


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """A length-prefixed frame; a timeout between header and payload leaves the stream
    mid-message, and the next call reads payload bytes as a header."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return await reader.readexactly(size)


class FrameReader:
    """The fix: the reader remembers a header it has read, so a retry after a timeout goes on
    with the payload instead of misreading it."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.pending: int | None = None

    async def read_frame(self) -> bytes:
        if self.pending is None:
            (self.pending,) = HEADER.unpack(await self.reader.readexactly(HEADER.size))
        payload = await self.reader.readexactly(self.pending)
        self.pending = None
        return payload


async def slow_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that sends a header, thinks for 2 s, then the payload and a second frame."""
    first, second = b"payload-1", b"payload-2"
    writer.write(HEADER.pack(len(first)))
    await writer.drain()
    await asyncio.sleep(2)
    writer.write(first + HEADER.pack(len(second)) + second)
    await writer.drain()
    await reader.read()  # until the client closes
    writer.close()


class Store:
    """An async storage client: the target of armed actions in the tests."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    async def load(self, key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    async def save(self, value: str) -> None:
        await asyncio.sleep(0)
        self.saved.append(value)
