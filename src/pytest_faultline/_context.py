"""What a subsystem may use of a test's fault session.

``net``, ``sched``, ``cleanup``, ``lockorder`` (and the coming ``aio`` and ``sweep``) import this
module and never the controller, as pytest-xdist's schedulers know only ``protocol.py``. The
controller (:class:`pytest_faultline.Faultline`) implements :class:`FaultContext`; tests of a
subsystem may hand it any object that does.

Here: the context protocol, typed per-test service keys, the undo stack, and event kinds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from ._record import FrozenRecord

if TYPE_CHECKING:
    from .actions import Hit
    from .arming import Arming
    from .decider import Decider, Stream
    from .settings import Settings

__all__ = [
    "Body",
    "BodyWrapper",
    "EventKind",
    "FaultContext",
    "FaultEvent",
    "HandlerKind",
    "ServiceKey",
    "UndoStack",
    "format_event",
]

T = TypeVar("T")
Body = Callable[[], object]
BodyWrapper = Callable[[Body], object]
# 'disconnect': drop connections (Disconnect action, disconnect_mid_recycle); 'preempt': a
# scheduling point (Preempt action); 'wake': teardown wakes anything parked.
HandlerKind = Literal["disconnect", "preempt", "wake"]


class EventKind(str, enum.Enum):  # noqa: UP042 - not StrEnum: members carry is_fault
    """What a :class:`FaultEvent` is. ``is_fault`` tells a fault (something injected into the
    code, or a failure the plugin found) from bookkeeping (a scenario applied, a proxy created,
    a clean exploration); the summary and the JSON report count only faults."""

    is_fault: bool

    def __new__(cls, value: str, is_fault: bool) -> EventKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.is_fault = is_fault
        return member

    def __str__(self) -> str:
        return str(self.value)

    # armed actions
    RAISE = ("raise", True)
    DELAY = ("delay", True)
    RETURN = ("return", True)
    CALL = ("call", True)
    STALL = ("stall", True)
    PREEMPT = ("preempt", True)
    CANCEL = ("cancel", True)  # an asyncio task cancelled at a point or call
    DISCONNECT = ("disconnect", True)
    ACTION = ("action", True)  # an action of the user's own
    WATCH = ("watch", False)
    STALL_TIMEOUT = ("stall-timeout", False)  # what became of a stall: not a second fault
    # socket faults and the proxy
    SHORT_READ = ("short-read", True)
    EOF = ("eof", True)
    RESET = ("reset", True)
    TIMEOUT = ("timeout", True)
    TOXIC = ("toxic", True)
    PROXY = ("proxy", False)
    # schedules
    INTERLEAVING = ("interleaving", True)  # an explored schedule that failed
    SCHEDULE = ("schedule", False)  # summary of an exploration that found nothing
    # time and cleanup
    JUMP = ("jump", True)
    CLOCK = ("clock", False)
    HOLD = ("hold", True)
    DEFER = ("defer", False)
    RELEASE = ("release", False)
    RAN = ("ran", False)
    UNTIL = ("until", False)  # a deferral's release point was reached
    # lock order and thread affinity (findings count as faults: the test's failure is theirs)
    LOCK_ORDER = ("lock-order", True)
    AFFINITY_VIOLATION = ("thread-affinity", True)
    CONFINE = ("confine", False)  # an object confined, transferred, or types watched
    # fault-space sweeps
    SWEEP = ("sweep", False)  # summary of a sweep that found nothing
    SWEEP_FAILURE = ("sweep-failure", True)  # a swept fault the code did not survive
    # the rest
    SCENARIO = ("scenario", False)
    EXAMPLE = ("example", False)  # a Hypothesis example (or faultline.example()) began
    NOTE = ("note", False)

    @classmethod
    def of(cls, value: str) -> EventKind:
        """The kind named ``value``; an unknown name is a user action's own kind."""
        return _KINDS.get(value, cls.ACTION)


_KINDS: dict[str, EventKind] = {kind.value: kind for kind in EventKind}


def format_event(time_s: float, thread: str, kind: str, name: str, detail: str) -> str:
    """One event as a line of the report (the one formatter for events)."""
    return f"{time_s * 1000:9.3f} ms  [{thread}] {kind} {name}: {detail}"


# Written out, not @dataclass: the import of the controller is on every pytest start (_record.py).
class FaultEvent(FrozenRecord):
    """One thing a fault did: its ``kind``, the target ``name``, the ``thread`` it happened on,
    a human ``detail``, and ``time`` in seconds since the test's controller started (real time,
    not the test's virtual clock). ``kind.is_fault`` tells faults from bookkeeping."""

    __slots__ = __match_args__ = ("kind", "name", "thread", "detail", "time")
    kind: EventKind
    name: str
    thread: str
    detail: str
    time: float

    def __init__(self, kind: EventKind, name: str, thread: str, detail: str, time: float) -> None:
        self._set(kind, name, thread, detail, time)

    @property
    def is_fault(self) -> bool:
        return self.kind.is_fault

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "fault": self.kind.is_fault,
            "name": self.name,
            "thread": self.thread,
            "detail": self.detail,
            "time": self.time,
        }

    def __str__(self) -> str:
        return format_event(self.time, self.thread, self.kind.value, self.name, self.detail)


class UndoStack:
    """Callbacks run in reverse order of registration, every one of them, whatever happens."""

    def __init__(self) -> None:
        self._items: list[tuple[Callable[[], object], str]] = []

    def push(self, fn: Callable[[], object], label: str = "") -> None:
        self._items.append((fn, label or getattr(fn, "__qualname__", repr(fn))))

    def __len__(self) -> int:
        return len(self._items)

    def unwind(self) -> list[tuple[str, BaseException]]:
        """Run every callback, newest first; return the failures instead of stopping at one."""
        return self.unwind_to(0)

    def unwind_to(self, depth: int) -> list[tuple[str, BaseException]]:
        """Run the callbacks pushed after the stack was ``depth`` long, newest first (undo one
        example of a test and keep what the test set up before it)."""
        errors: list[tuple[str, BaseException]] = []
        while len(self._items) > depth:
            fn, label = self._items.pop()
            try:
                fn()
            except BaseException as exc:
                errors.append((label, exc))
        return errors


class ServiceKey(Generic[T]):
    """Names one per-test service (the socket faults, the clock, the scheduler's setup) and its
    type: ``context.service(CLOCK, make_clock)`` is a ``Clock`` to the type checker."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ServiceKey({self.name!r})"


class FaultContext(Protocol):
    """What a subsystem may use of a test's fault session (implemented by the controller)."""

    @property
    def nodeid(self) -> str:
        """The test's node id ('' outside pytest)."""
        ...

    @property
    def settings(self) -> Settings:
        """The session's resolved options."""
        ...

    @property
    def undo(self) -> UndoStack:
        """Every patch is pushed here; unwound in reverse order when the test ends."""
        ...

    @property
    def decider(self) -> Decider:
        """The decider of the run in progress (an explored run's own, inside ``use_decider``)."""
        ...

    def stream(self, source: str, *, recorded: bool = False) -> Stream:
        """The draws of one fault source, from the current decider."""
        ...

    def record(self, kind: EventKind, name: str, detail: str = "") -> FaultEvent:
        """Append an event to the test's report."""
        ...

    def add_handler(self, kind: HandlerKind, fn: Callable[[Hit | None], object]) -> None:
        """Call ``fn(hit)`` when an action of ``kind`` runs (removed when the test ends)."""
        ...

    def run_handlers(self, kind: HandlerKind, hit: Hit | None) -> int:
        """Run the handlers of ``kind``; return how many ran."""
        ...

    def wrap_body(self, wrapper: BodyWrapper) -> None:
        """Run the test function through ``wrapper(call)`` (explorations re-run it)."""
        ...

    def service(self, key: ServiceKey[T], factory: Callable[[FaultContext], T]) -> T:
        """The test's single instance of a service, made by ``factory`` on first use."""
        ...

    def peek(self, key: ServiceKey[T]) -> T | None:
        """The service if it was made already, else None (never makes it)."""
        ...

    def use_decider(self, decider: Decider) -> AbstractContextManager[Decider]:
        """Within the block, draws (``stream``, armings) come from ``decider``; the previous one
        is back after it, whatever happens."""
        ...

    def adopt_decider(self, decider: Decider) -> None:
        """Make ``decider`` the test's from now on: its token is the one the report prints
        (an exploration adopts the failing run's)."""
        ...

    def arm(
        self,
        target: str | Callable[..., Any],
        action: object,
        *,
        times: int | None = None,
        after: int = 0,
        probability: float = 1.0,
        strict: bool | None = None,
    ) -> Arming:
        """Arm ``target`` with ``action`` (see the fixture's ``arm``)."""
        ...
