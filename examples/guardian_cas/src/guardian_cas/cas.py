"""minicas: a small channel-access-style server library, in the manner of pcaspy over EPICS CAS.

A :class:`Server` holds *records* (named process variables). Each record keeps its value in a
:class:`Buffer`: a slot of the server's :class:`Arena`, one ``bytearray`` handed out and taken
back like a C heap. A record's type follows the values it is given; when the type changes, the
record gets a new buffer and the old one goes back to the arena. Clients subscribe to records
through the server's :class:`Endpoint`; :meth:`Server.process` serialises posted updates into
messages, and "control" subscriptions (EPICS's DBR_CTRL) also carry the record's units string,
copied into the message through the record's buffer.

The library's own advice (as its model's documentation implies): ``process()`` must run often,
so run it on its own thread with :func:`serve_in_thread` and push updates from your main loop.

(Not so, and that is the incident: nothing here takes a lock. ``process()`` may hold a record's
buffer while another thread replaces it; the units string is then copied into a freed slot,
which the arena has poisoned with 0xFD or handed to another record, and the subscriber gets a
corrupted message.)
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pytest_faultline import point

__all__ = [
    "Arena",
    "Buffer",
    "Client",
    "CorruptMessage",
    "Endpoint",
    "Record",
    "Server",
    "ServerThread",
    "Subscription",
    "Update",
    "decode",
    "serve_in_thread",
]

log = logging.getLogger("guardian_cas.cas")

# A slot: [0] type tag, [1:40] value, [40:64] units (a C string, NUL-padded, as strncpy leaves it).
SLOT_SIZE = 64
VALUE_AT, UNITS_AT = 1, 40
VALUE_SIZE, UNITS_SIZE = UNITS_AT - VALUE_AT, SLOT_SIZE - UNITS_AT
POISON = 0xFD  # what a freed slot is filled with (ASan's shadow byte for freed heap memory)
KIND_TAGS = {"long": 1, "double": 2, "string": 3}
TAG_KINDS = {tag: kind for kind, tag in KIND_TAGS.items()}
DEFAULT_POLL_S = 0.1
STOP_BOUND_S = 5.0

Value = int | float | str


class CorruptMessage(Exception):
    """A client received a message whose bytes do not decode: the server sent garbage."""


def kind_of(value: object) -> str:
    """The record type a value needs: ``long``, ``double`` or ``string``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(
            f"a record holds an int, a float or a str, got {value!r} ({type(value).__name__})"
        )
    return "long" if isinstance(value, int) else "double" if isinstance(value, float) else "string"


def encode_value(kind: str, value: Value) -> bytes:
    if kind == "long":
        data = struct.pack("<q", value)
    elif kind == "double":
        data = struct.pack("<d", value)
    else:
        text = str(value).encode()
        if len(text) > VALUE_SIZE - 1:
            raise ValueError(f"string {value!r} is longer than {VALUE_SIZE - 1} bytes")
        data = bytes([len(text)]) + text
    return data.ljust(VALUE_SIZE, b"\0")


class Arena:
    """The library's value memory: ``slots`` slots of 64 bytes in one ``bytearray``.

    Like a C allocator it does not know who still points at a slot it took back: a freed slot
    is poisoned with 0xFD and handed out again, last freed first.
    """

    def __init__(self, slots: int = 64) -> None:
        self.memory = bytearray(slots * SLOT_SIZE)
        self._free = list(range(slots - 1, -1, -1))

    def view(self, slot: int) -> memoryview:
        return memoryview(self.memory)[slot * SLOT_SIZE : (slot + 1) * SLOT_SIZE]

    def alloc(self) -> int:
        if not self._free:
            raise MemoryError(
                f"the arena's {len(self.memory) // SLOT_SIZE} slots are all in use; "
                f"make the Server with more arena_slots"
            )
        slot = self._free.pop()
        self.view(slot)[:] = bytes(SLOT_SIZE)
        return slot

    def free(self, slot: int) -> None:
        self.view(slot)[:] = bytes([POISON]) * SLOT_SIZE
        self._free.append(slot)


class Buffer:
    """A record's value storage (a ``gdd`` in EPICS): a type and a slot of the arena."""

    def __init__(self, arena: Arena, kind: str) -> None:
        self.kind = kind
        self.slot = arena.alloc()
        self.view = arena.view(self.slot)
        self.view[0] = KIND_TAGS[kind]

    def put_value(self, value: Value) -> None:
        self.view[VALUE_AT:UNITS_AT] = encode_value(self.kind, value)

    def put_units(self, units: str) -> None:
        """Copy a units string into the buffer's units field (strncpy: truncate, NUL-pad)."""
        self.view[UNITS_AT:] = units.encode()[:UNITS_SIZE].ljust(UNITS_SIZE, b"\0")


class Record:
    """A process variable: a name, optional units, and its current buffer."""

    def __init__(self, arena: Arena, name: str, value: Value, units: str | None = None) -> None:
        self.arena = arena
        self.name = name
        self.units = units
        self.buffer = Buffer(arena, kind_of(value))
        self.buffer.put_value(value)

    def set(self, value: Value) -> None:
        """Store ``value``; a value of another type replaces the record's buffer."""
        kind = kind_of(value)
        if kind == self.buffer.kind:
            self.buffer.put_value(value)
            return
        new = Buffer(self.arena, kind)
        new.put_value(value)
        old, self.buffer = self.buffer, new
        self.arena.free(old.slot)


@dataclass(frozen=True)
class Update:
    """One decoded message: what a client sees."""

    name: str
    kind: str
    value: Value
    units: str | None  # only control messages carry units


def encode(name: str, control: bool, slot: bytes) -> bytes:
    """A message on the wire: name length, name, control flag, the record's slot bytes."""
    data = name.encode()
    return bytes([len(data)]) + data + bytes([control]) + slot


def decode(message: bytes) -> Update:
    """Decode a message as a client does; :class:`CorruptMessage` if its bytes make no sense."""
    n = message[0]
    name = message[1 : 1 + n].decode()
    control = bool(message[1 + n])
    slot = message[2 + n :]
    tag = slot[0]
    if tag not in TAG_KINDS:
        what = "freed memory (0xfd)" if tag == POISON else f"unknown type tag {tag:#04x}"
        raise CorruptMessage(f"{name}: the value's type tag is {what}: {slot.hex(' ', 8)}")
    kind = TAG_KINDS[tag]
    raw = slot[VALUE_AT:UNITS_AT]
    value: Value
    try:
        if kind == "long":
            value = struct.unpack_from("<q", raw)[0]
        elif kind == "double":
            value = struct.unpack_from("<d", raw)[0]
        else:
            value = raw[1 : 1 + raw[0]].decode()
        units = slot[UNITS_AT:].split(b"\0", 1)[0].decode("ascii") if control else None
    except UnicodeDecodeError as exc:
        raise CorruptMessage(f"{name}: undecodable text ({exc}): {slot.hex(' ', 8)}") from None
    return Update(name, kind, value, units)


@dataclass(eq=False)
class Subscription:
    """A client's subscription to one record: the raw messages it received, in order."""

    name: str
    control: bool
    messages: list[bytes] = field(default_factory=list)

    def deliver(self, message: bytes) -> None:
        self.messages.append(message)

    def updates(self) -> list[Update]:
        """Every message decoded; raises :class:`CorruptMessage` at the first corrupted one."""
        return [decode(m) for m in self.messages]


class Endpoint:
    """The server's network side: clients' requests come in here, from any thread."""

    def __init__(self) -> None:
        self._requests: deque[tuple[str, object, object]] = deque()
        self._wake = threading.Event()

    def request(self, kind: str, first: object, second: object = None) -> None:
        self._requests.append((kind, first, second))
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def wait(self, timeout: float) -> None:
        if self._wake.wait(timeout):
            self._wake.clear()

    def take(self) -> list[tuple[str, object, object]]:
        taken = []
        while self._requests:
            taken.append(self._requests.popleft())
        return taken


class Client:
    """A channel-access client (an operator screen): subscribes and writes via an endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def subscribe(self, name: str, *, control: bool = False) -> Subscription:
        """Subscribe to ``name``; ``control=True`` asks for control messages (with units)."""
        subscription = Subscription(name, control)
        self.endpoint.request("subscribe", subscription)
        return subscription

    def write(self, name: str, value: Value) -> None:
        self.endpoint.request("write", name, value)


WriteHandler = Callable[[str, Value], bool]


class Server:
    """A channel-access server: records, subscriptions, and :meth:`process` to serve them.

    ``records`` maps each name to ``(initial value, units or None)``. ``on_write(name, value)``
    is called for client writes and returns whether it accepted the value.
    """

    def __init__(
        self,
        records: Mapping[str, tuple[Value, str | None]],
        on_write: WriteHandler | None = None,
        arena_slots: int = 64,
    ) -> None:
        self.arena = Arena(arena_slots)
        self.records = {
            name: Record(self.arena, name, value, units) for name, (value, units) in records.items()
        }
        self.on_write = on_write
        self.endpoint = Endpoint()
        self.processed = 0
        self.rejected: list[tuple[str, object]] = []
        self._changed: dict[str, None] = {}
        self._posted: deque[str] = deque()
        self._subscriptions: dict[str, list[Subscription]] = {name: [] for name in self.records}

    def _record(self, name: str) -> Record:
        try:
            return self.records[name]
        except KeyError:
            raise KeyError(f"no record {name!r}; the server has {sorted(self.records)}") from None

    def set_params(self, values: Mapping[str, Value]) -> None:
        """Set records' values; subscribers hear of them after :meth:`update`."""
        for name, value in values.items():
            self._record(name).set(value)
            self._changed[name] = None

    def update(self) -> None:
        """Post every record changed since the last update; the next process() sends them."""
        self._posted.extend(self._changed)
        self._changed.clear()
        self.endpoint.wake()

    def process(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for client requests, handle them, and send every
        posted update to its subscribers. Call it often; :func:`serve_in_thread` does."""
        self.processed += 1
        self.endpoint.wait(timeout)
        for kind, first, second in self.endpoint.take():
            if kind == "subscribe":
                assert isinstance(first, Subscription)
                self._subscribe(first)
            else:
                self._write(str(first), second)
        posted: dict[str, None] = {}
        while self._posted:
            posted[self._posted.popleft()] = None
        for name in posted:
            for subscription in list(self._subscriptions[name]):
                self._send(self.records[name], subscription)

    def _subscribe(self, subscription: Subscription) -> None:
        if subscription.name not in self.records:
            self.rejected.append(("subscribe", subscription.name))
            return
        self._subscriptions[subscription.name].append(subscription)
        self._send(self.records[subscription.name], subscription)  # the current value first

    def _write(self, name: str, value: object) -> None:
        accepted = (
            name in self.records
            and isinstance(value, (int, float, str))
            and self.on_write is not None
            and self.on_write(name, value)
        )
        if not accepted:
            self.rejected.append((name, value))

    def _send(self, record: Record, subscription: Subscription) -> None:
        if not subscription.control:
            # A base message is the buffer's bytes, read in one go from the record's buffer.
            subscription.deliver(encode(record.name, False, bytes(record.buffer.view)))
            return
        # A control message also carries the units, copied in through the buffer (as CAS's
        # gdd::putConvert does); the buffer is held across the copy.
        buffer = record.buffer
        point("cas.ctrl_units", record=record.name)
        buffer.put_units(record.units or "")
        subscription.deliver(encode(record.name, True, bytes(buffer.view)))


class ServerThread(threading.Thread):
    """Runs ``server.process(poll)`` in a loop on its own thread until :meth:`stop`.

    If ``process()`` raises, the thread ends and keeps the exception in ``error``.
    """

    def __init__(self, server: Server, poll: float = DEFAULT_POLL_S) -> None:
        super().__init__(name="cas-server", daemon=True)
        self.server = server
        self.poll = poll
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.server.process(self.poll)
        except Exception as exc:
            self.error = exc
            log.exception("the CAS server thread died")

    def stop(self) -> None:
        """Stop the loop and join the thread (bounded)."""
        self._stopping.set()
        self.server.endpoint.wake()
        self.join(STOP_BOUND_S)
        if self.is_alive():
            raise RuntimeError(f"the CAS server thread did not stop within {STOP_BOUND_S} s")


def serve_in_thread(server: Server, poll: float = DEFAULT_POLL_S) -> ServerThread:
    """Start serving ``server`` on its own thread, so that your main loop never has to call
    ``process()``; stop it with ``.stop()``."""
    thread = ServerThread(server, poll)
    thread.start()
    return thread
