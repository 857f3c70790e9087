"""Toxiproxy 2.12's toxics: their names and attributes, input checks, and what each does to
one direction of one connection of the embedded proxy.

A connection's direction runs its data through a chain of *stages*, one per toxic in the order
the toxics were added. A stage turns each input item (a chunk of data, or the end of the stream)
into output items with a due time; the proxy sends items in order, none before its due time.
That is Toxiproxy's goroutine pipeline, flattened into one event loop: a latency stage delays
every chunk from its own arrival (delays overlap, throughput is not limited), a bandwidth stage
queues chunks behind each other, a timeout stage drops data and asks for a timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .protocol import Chooser, ToxicBadRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "STREAMS",
    "TOXIC_ATTRIBUTES",
    "Item",
    "Stage",
    "ToxicState",
    "check_toxic",
    "make_stage",
]

STREAMS = ("upstream", "downstream")
MS = 1e-3
US = 1e-6
BYTES_PER_KB = 1000  # Toxiproxy's bandwidth rate is in KB/s of 1000 bytes
BANDWIDTH_SLICE_S = 0.1  # large chunks leave a bandwidth toxic in 100 ms pieces, as Toxiproxy's

# Toxic type -> its attributes and their defaults (all whole numbers, as in Toxiproxy's JSON).
TOXIC_ATTRIBUTES: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}

# What an item asks the proxy to do when it reaches the head of a direction's output queue.
DATA = "data"  # send the bytes
EOF = "eof"  # the source ended: shut the destination down for writing (a FIN)
CLOSE = "close"  # close the whole connection (both peers see EOF)
RESET = "reset"  # reset the whole connection (SO_LINGER 0: both peers see RST)


@dataclass
class Item:
    """One entry of a direction's output queue."""

    due: float
    kind: str
    data: bytes = b""


@dataclass
class ToxicState:
    """A toxic as the embedded proxy keeps it; stages read its attributes live, so an update
    acts on connections that exist already."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Toxiproxy's JSON shape of a toxic."""
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


def check_toxic(
    type: object,
    stream: object,
    toxicity: object,
    attributes: Mapping[str, object],
    *,
    base: Mapping[str, int] | None = None,
) -> tuple[str, str, float, dict[str, int]]:
    """Validate a toxic's fields; return them with the attributes' defaults filled in.

    ``base`` holds the current attributes when updating: the given ones are merged into it.
    Raises :class:`ToxicBadRequest` saying what was wrong and what is accepted.
    """
    if not isinstance(type, str) or type not in TOXIC_ATTRIBUTES:
        raise ToxicBadRequest(
            f"invalid toxic type {type!r}: use one of {', '.join(TOXIC_ATTRIBUTES)}"
        )
    if stream not in STREAMS:
        raise ToxicBadRequest(
            f"stream was invalid, can be either upstream or downstream (got {stream!r}); "
            f"downstream is the data from the upstream server to the client"
        )
    if (
        isinstance(toxicity, bool)
        or not isinstance(toxicity, (int, float))
        or not 0.0 <= toxicity <= 1.0
    ):
        raise ToxicBadRequest(
            f"toxicity of a {type} toxic must be a number from 0.0 to 1.0 (the chance that a "
            f"connection is affected), got {toxicity!r}"
        )
    accepted = TOXIC_ATTRIBUTES[type]
    merged = dict(accepted if base is None else base)
    for key, value in attributes.items():
        if key not in accepted:
            raise ToxicBadRequest(
                f"a {type} toxic has no attribute {key!r}; its attributes are {', '.join(accepted)}"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ToxicBadRequest(
                f"attribute {key!r} of a {type} toxic must be a whole number >= 0, got {value!r}"
            )
        merged[key] = value
    return type, str(stream), float(toxicity), merged


class Stage:
    """A toxic at work on one direction of one connection. The default passes data through."""

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float) -> None:
        self.toxic = toxic
        self.chooser = chooser
        self.started = now
        self.acted = False  # the toxic changed something on this connection
        self.reported = False  # ... and the proxy recorded a fault event for it

    @property
    def attrs(self) -> dict[str, int]:
        return self.toxic.attributes

    def data(self, t: float, chunk: bytes) -> list[Item]:
        return [Item(t, DATA, chunk)]

    def eof(self, t: float) -> list[Item]:
        return [Item(t, EOF)]

    def deadline(self) -> float | None:
        """When :meth:`fire` wants to run, or None."""
        return None

    def fire(self, now: float) -> list[Item]:
        return []

    def removed(self, now: float) -> list[Item]:
        """Items to emit when the toxic is removed while the connection lives."""
        return []


class Latency(Stage):
    def data(self, t: float, chunk: bytes) -> list[Item]:
        delay = float(self.attrs["latency"])
        jitter = self.attrs["jitter"]
        if jitter:
            delay += self.chooser.uniform(-jitter, jitter)
        self.acted = True
        return [Item(t + max(delay, 0.0) * MS, DATA, chunk)]


class Bandwidth(Stage):
    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float) -> None:
        super().__init__(toxic, chooser, now)
        self.free_at = now

    def data(self, t: float, chunk: bytes) -> list[Item]:
        rate = self.attrs["rate"] * BYTES_PER_KB
        if rate <= 0:  # Toxiproxy lets a zero rate through unthrottled
            return [Item(t, DATA, chunk)]
        self.acted = True
        piece = max(1, int(rate * BANDWIDTH_SLICE_S))
        items = []
        at = max(t, self.free_at)
        for start in range(0, len(chunk), piece):
            part = chunk[start : start + piece]
            at += len(part) / rate
            items.append(Item(at, DATA, part))
        self.free_at = at
        return items


class SlowClose(Stage):
    def eof(self, t: float) -> list[Item]:
        self.acted = True
        return [Item(t + self.attrs["delay"] * MS, EOF)]


class Timeout(Stage):
    """Drops data; closes the connection after ``timeout`` ms without data (0: never)."""

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float) -> None:
        super().__init__(toxic, chooser, now)
        self.last = now
        self.done = False

    def data(self, t: float, chunk: bytes) -> list[Item]:
        self.acted = True
        self.last = max(self.last, t)
        return []

    def deadline(self) -> float | None:
        timeout = self.attrs["timeout"]
        if self.done or timeout <= 0:
            return None
        return self.last + timeout * MS

    def fire(self, now: float) -> list[Item]:
        self.done = self.acted = True
        return [Item(now, CLOSE)]

    def removed(self, now: float) -> list[Item]:
        # Toxiproxy closes the connections a timeout toxic was holding when it is removed.
        if self.done:
            return []
        self.done = True
        return [Item(now, CLOSE)]


class ResetPeer(Stage):
    """On the first input (data or end), waits ``timeout`` ms, then resets the connection."""

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float) -> None:
        super().__init__(toxic, chooser, now)
        self.at: float | None = None

    def _arm(self, t: float) -> list[Item]:
        if self.at is None:
            self.acted = True
            self.at = t + self.attrs["timeout"] * MS
        return []

    def data(self, t: float, chunk: bytes) -> list[Item]:
        return self._arm(t)

    def eof(self, t: float) -> list[Item]:
        return self._arm(t)

    def deadline(self) -> float | None:
        return self.at

    def fire(self, now: float) -> list[Item]:
        self.at = None
        return [Item(now, RESET)]


class Slicer(Stage):
    def data(self, t: float, chunk: bytes) -> list[Item]:
        average = self.attrs["average_size"]
        if average <= 0 or len(chunk) <= 1:
            return [Item(t, DATA, chunk)]
        variation = min(self.attrs["size_variation"], average - 1)
        delay = self.attrs["delay"] * US
        self.acted = True
        items = []
        start = 0
        while start < len(chunk):
            size = average
            if variation:
                size += self.chooser.choice(2 * variation + 1) - variation
            items.append(Item(t, DATA, chunk[start : start + size]))
            start += size
            t += delay
        return items


class LimitData(Stage):
    """Lets ``bytes`` through, truncating the chunk that crosses the limit, then closes."""

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float) -> None:
        super().__init__(toxic, chooser, now)
        self.sent = 0
        self.closed = False

    def data(self, t: float, chunk: bytes) -> list[Item]:
        if self.closed:
            return []
        remaining = max(self.attrs["bytes"] - self.sent, 0)
        items = []
        if remaining < len(chunk):
            chunk = chunk[:remaining]
            self.acted = True
        if chunk:
            items.append(Item(t, DATA, chunk))
            self.sent += len(chunk)
        if self.sent >= self.attrs["bytes"]:
            self.closed = self.acted = True
            items.append(Item(t, CLOSE))
        return items


STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}


def make_stage(toxic: ToxicState, chooser: Chooser, now: float) -> Stage:
    """The stage that runs ``toxic`` on one direction of one connection."""
    return STAGES[toxic.type](toxic, chooser, now)
