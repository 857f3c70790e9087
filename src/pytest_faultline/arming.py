"""One ``faultline.arm(...)``: where, what, and when it fires."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _raw
from ._context import EventKind
from .actions import PROCEED, Action, Hit, Stall, _resolve

if TYPE_CHECKING:
    from ._context import FaultContext

__all__ = ["Arming"]


class Arming:
    """One ``faultline.arm(...)``: where, what, and when it fires. Counts every arrival."""

    def __init__(
        self,
        context: FaultContext,
        target: str,
        action: Action,
        *,
        times: int | None,
        after: int,
        probability: float,
        strict: bool,
        index: int,
    ) -> None:
        self.context = context
        self.target = target
        self.action = action
        self.times = times
        self.after = after
        self.probability = probability
        self.strict = strict
        self.fired = 0
        self.active = True
        self._source = f"arm:{target}#{index}"
        self._arrivals = _raw.CountLatch()
        self._lock = _raw.allocate_lock()
        self._async_waiters: list[tuple[int, Any, Any]] = []  # wait_async: (n, loop, future)

    def __repr__(self) -> str:
        return (
            f"<Arming {self.target!r} {self.action.describe()} hits={self.hits} fired={self.fired}>"
        )

    @property
    def hits(self) -> int:
        """How many times the target was reached (whether or not the action fired)."""
        return self._arrivals.count

    def arrive(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Count an arrival; perform the action if it fires. Returns PROCEED or a value."""
        __tracebackhide__ = True
        hit = self._count(args, kwargs)
        return PROCEED if hit is None else self.action.perform(hit)

    async def arrive_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """:meth:`arrive` at an armed coroutine function, inside it as it is awaited."""
        __tracebackhide__ = True
        hit = self._count(args, kwargs)
        return PROCEED if hit is None else await self.action.perform_async(hit)

    def _count(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hit | None:
        """Count an arrival; the hit if the action fires."""
        if not self.active:
            return None
        with self._lock:
            count = self._arrivals.count + 1
            # Draw from the decider in force now, so an explored run's faults are its own.
            fire = (
                count > self.after
                and (self.times is None or self.fired < self.times)
                and self.context.stream(self._source).chance(self.probability)
            )
            if fire:
                self.fired += 1
            self._arrivals.arrive()
            if self._async_waiters:
                self._wake_async()
        if not fire:
            return None
        detail = self.action.describe()
        if kwargs and not args:
            detail += " " + ", ".join(f"{k}={v!r}" for k, v in list(kwargs.items())[:4])
        self.context.record(EventKind.of(self.action.kind), self.target, f"{detail} (hit {count})")
        thread = _raw.current_thread().name
        return Hit(self.target, args, kwargs, count, thread, self.context, self)

    def wait(self, n: int = 1, timeout: float = _raw.WAIT_BOUND_S) -> bool:
        """Block until the target has been reached ``n`` times in all; False on timeout.

        Use it instead of sleeping to know that another thread got to the target.
        """
        return self._arrivals.wait(n, timeout)

    async def wait_async(self, n: int = 1, timeout: float = _raw.WAIT_BOUND_S) -> bool:
        """:meth:`wait` for async code: awaits (the loop and its other tasks go on) until the
        target has been reached ``n`` times in all; False after ``timeout`` seconds of loop
        time (virtual on faultline's loop)."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._arrivals.count >= n:
                return True
            self._async_waiters.append((n, loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self._arrivals.count >= n
        return True

    def _wake_async(self) -> None:
        count = self._arrivals.count
        woken = [w for w in self._async_waiters if w[0] <= count]
        self._async_waiters = [w for w in self._async_waiters if w[0] > count]
        for _, loop, future in woken:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    def release(self) -> None:
        """Let threads held by a :class:`~pytest_faultline.actions.Stall` go on."""
        if isinstance(self.action, Stall):
            self.action.release()

    def disarm(self) -> None:
        """Stop firing from now on (hits are still counted while the test runs)."""
        self.active = False
        self.release()
