"""The test's controllable clock: freezegun underneath, timers and deferrals driven by it.

While the clock runs, time stands still: ``time.time``, ``time.monotonic``, ``time.perf_counter``
and ``datetime.now`` return the clock's reading and move only when the test (or a scenario, or
the thread scheduler) advances it. ``threading.Timer`` objects created meanwhile wait for clock
time instead of wall time, and fire, each on its own thread, when an advance reaches them.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind, ServiceKey
from ..actions import PROCEED, Action, Hit
from ..errors import FaultlineError
from ._park import park

if TYPE_CHECKING:
    from .._context import FaultContext

__all__ = ["Clock", "ClockTimer"]

CLOCK: ServiceKey[Clock] = ServiceKey("clock")

# Modules whose references to the time functions stay real. freezegun's defaults keep
# threading/queue real so their timeouts cannot hang; we add our own bookkeeping, pytest (its
# durations), asyncio (event loops keep real time, see real_asyncio) and subprocess (wait
# timeouts would never expire).
REAL_TIME_MODULES = (
    "pytest_faultline",
    "_pytest",
    "pluggy",
    "asyncio",
    "pytest_asyncio",
    "subprocess",
)
FIRE_BOUND_S = 10.0  # how long an advance waits for one timer callback to finish
TIMER_POLL_S = 1.0
MAX_FIRINGS = 100_000  # per advance: a timer re-arming itself with interval 0 must not spin
JOIN_BOUND_S = _raw.JOIN_BOUND_S

_RealTimer = threading.Timer


def _utc_timestamp(moment: _dt.datetime) -> float:
    return calendar.timegm(moment.timetuple()) + moment.microsecond / 1e6


@dataclass(order=True)
class _Due:
    """Something that happens when clock time reaches ``due`` (a timer, a held call)."""

    due: float
    seq: int
    label: str = field(compare=False)
    fire: Callable[[bool], None] = field(compare=False)  # fire(wait)
    cancel: Callable[[], None] = field(compare=False)
    done: bool = field(default=False, compare=False)


class ClockTimer(_RealTimer):
    """``threading.Timer`` while the clock runs: waits for clock time, fires on ``advance``.

    The callback runs on the timer's own thread, as with a real timer. ``cancel()`` works as
    usual. A timer still pending when the test ends is cancelled and reported as an event.
    """

    _clock: Clock  # set on the per-clock subclass installed as threading.Timer

    def __init__(
        self,
        interval: float,
        function: Callable[..., object],
        args: Any = None,
        kwargs: Any = None,
    ) -> None:
        super().__init__(interval, function, args, kwargs)
        self._go = _raw.RawEvent()
        self._fired = _raw.RawEvent()
        self._entry: _Due | None = None

    def start(self) -> None:
        clock = self._clock
        label = f"Timer({self.interval}, {getattr(self.function, '__qualname__', self.function)!r})"
        self._entry = clock._schedule(self.interval, label, self._fire, self.cancel)
        super().start()

    def cancel(self) -> None:
        """Stop the timer if it has not fired yet (as ``threading.Timer.cancel``)."""
        super().cancel()
        if self._entry is not None:
            self._entry.done = True
        self._go.set()

    def _fire(self, wait: bool) -> None:
        self._go.set()
        if wait and not park(
            self._fired, FIRE_BOUND_S, f"advance waits for {self.name}'s callback"
        ):
            self._clock._faultline.record(
                EventKind.CLOCK,
                "timer",
                f"{self.name}'s callback still running after {FIRE_BOUND_S}s; the advance goes on",
            )

    def run(self) -> None:
        try:
            while not park(self._go, TIMER_POLL_S, f"{self.name} waits for clock time"):
                if self._clock.stopped:
                    return
            if not self.finished.is_set():
                self.function(*self.args, **self.kwargs)
            self.finished.set()
        finally:
            self._fired.set()


class Clock:
    """The test's clock (``faultline.clock``). Started on first use, stopped when the test ends.

    ``now()`` / ``time()`` / ``monotonic()`` read it; ``advance(seconds)`` moves it forward and
    fires every timer and held call that falls due on the way, in due order, each at its due
    time; ``set(dt)`` moves it to a date. Listeners added with :meth:`add_listener` hear every
    move (the thread scheduler drives its virtual time through this clock).
    """

    def __init__(self, faultline: FaultContext, start: _dt.datetime | None = None) -> None:
        from freezegun import api as freezegun_api

        self._faultline = faultline
        self._lock = _raw.allocate_lock()
        self._queue: list[_Due] = []
        self._seq = itertools.count()
        self._listeners: list[Callable[[Clock], object]] = []
        self.stopped = False
        local_offset = _dt.datetime.now().astimezone().utcoffset() or _dt.timedelta(0)
        self._offset = local_offset
        if start is None:
            start = _dt.datetime.now(_dt.UTC)
        utc = self._to_utc(start)
        freezer = freezegun_api.freeze_time(
            utc,
            tz_offset=local_offset,
            ignore=list(REAL_TIME_MODULES),
            real_asyncio=True,
        )
        self._factory = freezer.start()
        faultline.undo.push(freezer.stop, "stop the clock (freezegun)")
        # freezegun also hands real time to any caller within a few frames of an ignored module,
        # which would give thread targets (called from threading) and callbacks we run real
        # time. Our ignore list is only for its module scan; the stack check sees none.
        lists = getattr(freezegun_api, "ignore_lists", None)
        if lists:
            lists[-1] = ()
        self._timer_class = type("Timer", (ClockTimer,), {"_clock": self})
        self._previous_timer = threading.Timer  # put back exactly this, not the import-time one
        threading.Timer = self._timer_class  # type: ignore[misc,assignment]
        faultline.undo.push(self._stop, "cancel clock timers, restore threading.Timer")
        faultline.record(EventKind.CLOCK, "start", f"time frozen at {self.now().isoformat()}")

    # -- reading ---------------------------------------------------------------------------------

    def now(self) -> _dt.datetime:
        """The clock's local time, as ``datetime.datetime.now()`` returns it in the test."""
        return self._utc() + self._offset

    def time(self) -> float:
        """Seconds since the epoch, as ``time.time()`` returns it in the test."""
        return _utc_timestamp(self._utc())

    def monotonic(self) -> float:
        """The clock's monotonic reading, as ``time.monotonic()`` returns it in the test."""
        return self.time()

    def _utc(self) -> _dt.datetime:
        moment: _dt.datetime = self._factory()
        return moment

    def _to_utc(self, moment: _dt.datetime) -> _dt.datetime:
        if not isinstance(moment, _dt.datetime):
            raise FaultlineError(
                f"clock.set() needs a datetime.datetime, got {moment!r}; for example "
                f"clock.set(datetime.datetime(2030, 1, 1, 12, 0))"
            )
        if moment.tzinfo is None:  # naive means local time, as datetime.now() gives it
            return moment - self._offset
        return moment.astimezone(_dt.UTC).replace(tzinfo=None)

    # -- moving ----------------------------------------------------------------------------------

    def advance(self, seconds: float | _dt.timedelta, *, wait: bool = True) -> None:
        """Move the clock forward by ``seconds``; fire what falls due on the way.

        Each timer or held call due by the new time fires in due order with the clock set to its
        due time; with ``wait`` (the default) the advance waits (bounded) for each timer's
        callback to finish, so its effects are visible when ``advance`` returns.
        """
        if isinstance(seconds, _dt.timedelta):
            seconds = seconds.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise FaultlineError(
                f"clock.advance() needs seconds >= 0 (a number or a timedelta), got {seconds!r}; "
                f"the clock does not go backwards by advance, use clock.set(datetime) for that"
            )
        self._check_running("advance")
        before = self.now()
        fired = self._run_until(self.time() + float(seconds), wait)
        self._faultline.record(
            EventKind.CLOCK,
            "advance",
            f"+{float(seconds):g}s: {before.isoformat()} -> {self.now().isoformat()}"
            f"{f'; fired {fired}' if fired else ''}",
        )
        self._notify()

    def set(self, moment: _dt.datetime, *, wait: bool = True) -> None:
        """Move the clock to ``moment`` (naive means local time). Moving forward fires what falls
        due, as :meth:`advance`; moving back fires nothing (and ``time.monotonic`` goes back
        too, since freezegun derives it from the date: prefer :meth:`advance`)."""
        utc = self._to_utc(moment)
        self._check_running("set")
        before = self.now()
        target = _utc_timestamp(utc)
        fired = 0
        if target >= self.time():
            fired = self._run_until(target, wait)
        else:
            self._factory.move_to(utc)
        note = f"; fired {fired}" if fired else ""
        self._faultline.record(
            EventKind.CLOCK, "set", f"{before.isoformat()} -> {self.now().isoformat()}{note}"
        )
        self._notify()

    def jump(self, seconds: float, *, reason: str = "") -> None:
        """:meth:`advance`, recorded as a jump (what the ``clock_jump`` scenario does)."""
        self._faultline.record(
            EventKind.JUMP, "clock", f"+{seconds:g}s{f' at {reason}' if reason else ''}"
        )
        self.advance(seconds)

    def next_due(self) -> float | None:
        """Clock seconds until the earliest pending timer or held call, or None if nothing is
        pending. A scheduler with every thread asleep advances by this much."""
        with self._lock:
            pending = [e.due for e in self._queue if not e.done]
        return None if not pending else max(0.0, min(pending) - self.time())

    def add_listener(self, listener: Callable[[Clock], object]) -> None:
        """Call ``listener(clock)`` after every advance or set, until the test ends."""
        self._listeners.append(listener)

    def pending(self) -> list[str]:
        """What waits for clock time, in due order (for messages and debugging)."""
        with self._lock:
            return [f"{e.label} due at +{e.due - self.time():g}s" for e in sorted(self._queue)]

    def _run_until(self, target: float, wait: bool) -> int:
        fired = 0
        while True:
            with self._lock:
                while self._queue and self._queue[0].done:
                    heapq.heappop(self._queue)
                if not self._queue or self._queue[0].due > target:
                    break
                entry = heapq.heappop(self._queue)
                entry.done = True
            self._move_forward_to(entry.due)
            entry.fire(wait)
            fired += 1
            if fired >= MAX_FIRINGS:
                raise FaultlineError(
                    f"clock.advance() fired {fired} timers or held calls without reaching its "
                    f"target; something re-arms itself with a zero interval ({entry.label})"
                )
        self._move_forward_to(target)
        return fired

    def _move_forward_to(self, timestamp: float) -> None:
        # A nested advance (from a timer callback) may already have gone further: never go back.
        delta = timestamp - self.time()
        if delta > 0:
            self._factory.tick(_dt.timedelta(seconds=delta))

    def _schedule(
        self, delay: float, label: str, fire: Callable[[bool], None], cancel: Callable[[], None]
    ) -> _Due:
        self._check_running("schedule")
        entry = _Due(self.time() + max(0.0, float(delay)), next(self._seq), label, fire, cancel)
        with self._lock:
            heapq.heappush(self._queue, entry)
        return entry

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)

    def _check_running(self, what: str) -> None:
        if self.stopped:
            raise FaultlineError(f"clock.{what}(): the clock has stopped, its test has ended")

    def _stop(self) -> None:
        """Cancel what still waits for clock time (reported), join timer threads, unpatch."""
        if threading.Timer is self._timer_class:  # unless someone patched it over ours
            threading.Timer = self._previous_timer  # type: ignore[misc]
        with self._lock:
            left = [e for e in sorted(self._queue) if not e.done]
            self._queue = []
        for entry in left:
            entry.done = True
            entry.cancel()
            self._faultline.record(EventKind.CLOCK, "cancelled", f"{entry.label} never fell due")
        self.stopped = True
        for thread in threading.enumerate():
            if isinstance(thread, ClockTimer) and getattr(thread, "_clock", None) is self:
                thread.join(JOIN_BOUND_S)


class ClockJump(Action):
    """Advance the test's clock by ``seconds`` (firing what falls due), then go on."""

    kind = "jump"

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds

    def perform(self, hit: Hit) -> Any:
        self.clock.advance(self.seconds)
        return PROCEED

    def describe(self) -> str:
        return f"clock jumps +{self.seconds:g}s"
