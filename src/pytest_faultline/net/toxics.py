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
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import Chooser, ToxicBadRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONNECTION_ATTRIBUTES",
    "EMBEDDED_ONLY",
    "STREAMS",
    "TOXIC_ATTRIBUTES",
    "Item",
    "Link",
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
    # The embedded proxy's deterministic cuts (no Toxiproxy equivalent):
    # reply_lost: the request reaches the server, the connection is cut (reset=1: RST,
    # reset=0: FIN) before the reply's first byte reaches the client; times=0 means every reply.
    "reply_lost": {"reset": 1, "times": 1},
    # refuse: a new connection is cut at once (reset=1: RST, 0: EOF), upstream never contacted.
    "refuse": {"reset": 0},
}

# Any toxic may be limited to some new connections (embedded proxy only): let
# ``skip_connections`` new ones through, then act on the next ``connections`` (0: all of them).
# Either one given: the toxic leaves connections that were open when it was added alone.
CONNECTION_ATTRIBUTES: dict[str, int] = {"skip_connections": 0, "connections": 0}

# What a Toxiproxy server does not have: the backend refuses these with a clear error.
EMBEDDED_ONLY = frozenset({"reply_lost", "refuse"})
FLAGS = ("reset",)  # attributes that are 0 or 1
DOWNSTREAM_ONLY = ("reply_lost",)

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
    # Bookkeeping of the embedded proxy (not part of the JSON shape): new connections seen
    # since the toxic was added, and how many times a counted fault (reply_lost) acted.
    seen_connections: int = 0
    used: int = 0

    def selects_connections(self) -> bool:
        """The toxic is limited to some new connections (see ``CONNECTION_ATTRIBUTES``)."""
        return any(self.attributes.get(key) for key in CONNECTION_ATTRIBUTES)

    def takes_new_connection(self) -> bool:
        """Count one new connection; does the toxic act on it?"""
        self.seen_connections += 1
        skip = self.attributes.get("skip_connections", 0)
        count = self.attributes.get("connections", 0)
        return self.seen_connections > skip and (not count or self.seen_connections <= skip + count)

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
    if type in DOWNSTREAM_ONLY and stream != "downstream":
        raise ToxicBadRequest(
            f"a {type} toxic cuts the reply, so it acts on stream 'downstream' (the default); "
            f"got {stream!r}"
        )
    accepted = TOXIC_ATTRIBUTES[type]
    merged = dict(accepted if base is None else base)
    for key, value in attributes.items():
        if key not in accepted and key not in CONNECTION_ATTRIBUTES:
            raise ToxicBadRequest(
                f"a {type} toxic has no attribute {key!r}; its attributes are "
                f"{', '.join(accepted)}, and any toxic takes {', '.join(CONNECTION_ATTRIBUTES)}"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ToxicBadRequest(
                f"attribute {key!r} of a {type} toxic must be a whole number >= 0, got {value!r}"
            )
        if key in FLAGS and value > 1:
            raise ToxicBadRequest(
                f"attribute {key!r} of a {type} toxic is 1 (reset: RST) or 0 (close: EOF), "
                f"got {value!r}"
            )
        merged[key] = value
    return type, str(stream), float(toxicity), merged


class Link(Protocol):
    """What a stage may know of its connection: its number, and the bytes each direction has
    delivered to its destination so far (the byte offsets fault events name)."""

    number: int

    def delivered(self, stream: str) -> int: ...


class Stage:
    """A toxic at work on one direction of one connection. The default passes data through."""

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> None:
        self.toxic = toxic
        self.chooser = chooser
        self.started = now
        self.link = link
        self.acted = False  # the toxic changed something on this connection
        self.reported = False  # ... and the proxy recorded a fault event for it
        self.detail = ""  # what it did, when more than "acts on connection N" is worth saying

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
    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> None:
        super().__init__(toxic, chooser, now, link)
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

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> None:
        super().__init__(toxic, chooser, now, link)
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

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> None:
        super().__init__(toxic, chooser, now, link)
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

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> None:
        super().__init__(toxic, chooser, now, link)
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


class ReplyLost(Stage):
    """The server acted, the reply never arrived: the first reply bytes that follow bytes
    delivered upstream cut the connection instead of reaching the client.

    Deterministic: the cut happens when the reply reaches the proxy, whatever the timing of
    the client and server threads, so the request has always reached the server and no byte
    of its reply ever reaches the client.
    """

    def __init__(self, toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> None:
        super().__init__(toxic, chooser, now, link)
        self.mark = link.delivered("upstream")  # upstream bytes answered by earlier replies
        self.cut = False

    def data(self, t: float, chunk: bytes) -> list[Item]:
        if self.cut:
            return []
        times = self.attrs["times"]
        sent_up = self.link.delivered("upstream")
        if sent_up <= self.mark or (times and self.toxic.used >= times):
            self.mark = sent_up
            return [Item(t, DATA, chunk)]
        self.toxic.used += 1
        self.cut = self.acted = True
        reset = bool(self.attrs["reset"])
        self.detail = (
            f"reply lost on connection {self.link.number}: the request reached the server "
            f"(upstream offset {self.mark}..{sent_up}), the connection was "
            f"{'reset' if reset else 'closed'} at downstream offset "
            f"{self.link.delivered('downstream')} before the reply's first byte reached the "
            f"client ({len(chunk)} reply bytes dropped; cut {self.toxic.used}"
            f"{f' of {times}' if times else ''})"
        )
        return [Item(t, RESET if reset else CLOSE)]


class Refuse(Stage):
    """Cuts a new connection at once; the proxy never contacts the upstream (see relay)."""

    def connect(self) -> str:
        self.acted = True
        reset = bool(self.attrs["reset"])
        self.detail = (
            f"refused connection {self.link.number}: "
            f"{'reset' if reset else 'closed'} at connect, upstream not contacted"
        )
        return RESET if reset else CLOSE


STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
    "reply_lost": ReplyLost,
    "refuse": Refuse,
}


def make_stage(toxic: ToxicState, chooser: Chooser, now: float, link: Link) -> Stage:
    """The stage that runs ``toxic`` on one direction of the connection ``link``."""
    return STAGES[toxic.type](toxic, chooser, now, link)
