"""What an armed target does when it is reached.

``faultline.arm(target, action)`` takes one of these, or a shorthand: an exception class or
instance means :class:`Raise`, any other callable means :class:`Call`.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _raw
from ._context import EventKind
from ._record import Record
from .errors import FaultlineError, InjectedFault

if TYPE_CHECKING:
    from ._context import FaultContext
    from .arming import Arming

__all__ = [
    "PROCEED",
    "Action",
    "Call",
    "Cancel",
    "Delay",
    "Disconnect",
    "Hit",
    "Preempt",
    "Raise",
    "Return",
    "Stall",
    "Watch",
    "as_action",
]


class _Proceed:
    def __repr__(self) -> str:
        return "PROCEED"


PROCEED: Any = _Proceed()
"""Returned by :meth:`Action.perform` when the target should go on as if nothing happened."""

STALL_BOUND_S = _raw.STALL_BOUND_S

# Hit and the actions below are written out, not @dataclass: the import of the controller is on
# every pytest start (see _record.py). Each keeps the constructor, repr and equality it had as a
# dataclass; an action of the user's own may still be a dataclass (docs/samples/extending).


class Hit(Record):
    """One arrival at an armed target, as an action sees it."""

    __slots__ = __match_args__ = (
        "target",
        "args",
        "kwargs",
        "count",
        "thread",
        "faultline",
        "arming",
    )
    target: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    count: int
    thread: str
    faultline: FaultContext
    arming: Arming

    def __init__(
        self,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        count: int,
        thread: str,
        faultline: FaultContext,
        arming: Arming,
    ) -> None:
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.count = count
        self.thread = thread
        self.faultline = faultline
        self.arming = arming


class Action:
    """Base of every action. ``perform`` returns :data:`PROCEED` or the value to return instead."""

    __slots__ = ()  # a subclass without __slots__ (a user's dataclass) has a __dict__
    kind = "action"

    def perform(self, hit: Hit) -> Any:
        raise NotImplementedError

    async def perform_async(self, hit: Hit) -> Any:
        """The action at an armed coroutine function, inside it when it is awaited: by default
        :meth:`perform`; actions that wait (``Delay``, ``Stall``) or switch (``Preempt``,
        ``Cancel``) await instead of blocking the event loop."""
        return self.perform(hit)

    def describe(self) -> str:
        return self.kind


class Raise(Record, Action):
    """Raise ``exc`` (a class, or an instance raised afresh each time); by default an
    :class:`~pytest_faultline.InjectedFault` naming the target."""

    __slots__ = __match_args__ = ("exc",)
    exc: type[BaseException] | BaseException | None
    kind = "raise"

    def __init__(self, exc: type[BaseException] | BaseException | None = None) -> None:
        if exc is not None and not (
            isinstance(exc, BaseException)
            or (isinstance(exc, type) and issubclass(exc, BaseException))
        ):
            raise FaultlineError(
                f"Raise() needs an exception class or instance, got {exc!r}; "
                f"for example Raise(ConnectionResetError) or Raise(OSError(104, 'reset'))"
            )
        self.exc = exc

    def perform(self, hit: Hit) -> Any:
        __tracebackhide__ = True
        exc = self.exc
        if exc is None:
            raise InjectedFault(f"fault injected at {hit.target!r} (hit {hit.count})")
        if isinstance(exc, type):
            raise exc(f"fault injected at {hit.target!r} (hit {hit.count})")
        # A fresh copy, so raising it again does not grow one traceback across hits.
        raise copy.copy(exc).with_traceback(None)

    def describe(self) -> str:
        exc = self.exc
        if exc is None:
            return "raise InjectedFault"
        name = exc.__name__ if isinstance(exc, type) else repr(exc)
        return f"raise {name}"


class Delay(Record, Action):
    """Sleep ``seconds`` (through ``time.sleep``, so the clock and scheduler see it), then go on."""

    __slots__ = __match_args__ = ("seconds",)
    seconds: float
    kind = "delay"

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise FaultlineError(f"Delay() needs seconds >= 0, got {seconds!r}")
        self.seconds = seconds

    def perform(self, hit: Hit) -> Any:
        time.sleep(self.seconds)
        return PROCEED

    async def perform_async(self, hit: Hit) -> Any:
        import asyncio

        await asyncio.sleep(self.seconds)  # loop time: virtual on faultline's loop
        return PROCEED

    def describe(self) -> str:
        return f"delay {self.seconds}s"


class Return(Record, Action):
    """Skip the call and return ``value`` (for a point, ``point()`` returns it)."""

    __slots__ = __match_args__ = ("value",)
    value: Any
    kind = "return"

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def perform(self, hit: Hit) -> Any:
        return self.value

    def describe(self) -> str:
        return f"return {self.value!r}"


class Call(Record, Action):
    """Call ``fn`` with the target's arguments (a point's context as keywords), then go on."""

    __slots__ = __match_args__ = ("fn",)
    fn: Callable[..., Any]
    kind = "call"

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise FaultlineError(f"Call() needs a callable, got {fn!r}")
        self.fn = fn

    def perform(self, hit: Hit) -> Any:
        self.fn(*hit.args, **hit.kwargs)
        return PROCEED

    def describe(self) -> str:
        return f"call {getattr(self.fn, '__qualname__', repr(self.fn))}"


class Stall(Record, Action):
    """Block the arriving thread until :meth:`release` (or the test ends), at most ``timeout``
    seconds; then go on. ``arming.wait(...)`` tells the test a thread has arrived."""

    __slots__ = ("_released", "_waiters", "_waiters_lock", "timeout")
    __match_args__ = ("timeout",)
    timeout: float
    kind = "stall"

    def __init__(self, timeout: float = STALL_BOUND_S) -> None:
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise FaultlineError(f"Stall() needs a timeout > 0 seconds, got {timeout!r}")
        self.timeout = timeout
        self._released = _raw.RawEvent()
        self._waiters: list[tuple[Any, Any]] = []
        self._waiters_lock: Any = _raw.allocate_lock()

    def _values(self) -> tuple[Any, ...]:
        # Compared as the dataclass compared them: with its own event, so two stalls are equal
        # only if they are one.
        return (self.timeout, self._released, self._waiters, self._waiters_lock)

    def perform(self, hit: Hit) -> Any:
        if not self._released.wait(self.timeout):
            hit.faultline.record(
                EventKind.STALL_TIMEOUT,
                hit.target,
                f"not released within {self.timeout}s; going on",
            )
        return PROCEED

    async def perform_async(self, hit: Hit) -> Any:
        import asyncio

        if self._released.is_set():
            return PROCEED
        # A future the release resolves: the task awaits, the loop and its other tasks go on.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._waiters_lock:
            self._waiters.append((loop, future))
        if self._released.is_set():  # released meanwhile, from another thread
            self._wake()
        try:
            await asyncio.wait_for(future, self.timeout)  # loop time
        except TimeoutError:
            hit.faultline.record(
                EventKind.STALL_TIMEOUT,
                hit.target,
                f"not released within {self.timeout}s; going on",
            )
        return PROCEED

    def _wake(self) -> None:
        with self._waiters_lock:
            waiters, self._waiters[:] = list(self._waiters), []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    def release(self) -> None:
        """Let every stalled thread or task (and every later arrival) go on."""
        self._released.set()
        self._wake()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def describe(self) -> str:
        return f"stall (bound {self.timeout}s)"


class Preempt(Record, Action):
    """Force a thread switch here when the thread scheduler runs the test; otherwise recorded."""

    __slots__ = ()
    kind = "preempt"

    def perform(self, hit: Hit) -> Any:
        hit.faultline.run_handlers("preempt", hit)
        return PROCEED

    async def perform_async(self, hit: Hit) -> Any:
        import asyncio

        hit.faultline.run_handlers("preempt", hit)
        await asyncio.sleep(0)  # a scheduling point of the controlled loop
        return PROCEED


class Cancel(Record, Action):
    """Cancel the asyncio task that reaches the target: at an armed coroutine function the
    ``CancelledError`` is raised inside it when it is awaited; at a point or a plain call it is
    raised at the task's next ``await``."""

    __slots__ = ()
    kind = "cancel"

    def _task(self, hit: Hit) -> Any:
        import asyncio

        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is None:
            raise FaultlineError(
                f"Cancel() at {hit.target!r}: it was reached outside an asyncio task, so there "
                f"is nothing to cancel; arm it on code that runs in a task"
            )
        return task

    def perform(self, hit: Hit) -> Any:
        self._task(hit).cancel(f"cancelled by faultline at {hit.target!r}")
        return PROCEED

    async def perform_async(self, hit: Hit) -> Any:
        import asyncio

        self._task(hit).cancel(f"cancelled by faultline at {hit.target!r}")
        await asyncio.sleep(0)  # the CancelledError is raised here, inside the target
        return PROCEED


class Disconnect(Record, Action):
    """Drop every connection of the test's proxies and patched sockets, then go on."""

    __slots__ = ()
    kind = "disconnect"

    def perform(self, hit: Hit) -> Any:
        hit.faultline.run_handlers("disconnect", hit)
        return PROCEED


class Watch(Record, Action):
    """Do nothing but count hits (for ``faultline.hits`` and ``arming.wait``)."""

    __slots__ = ()
    kind = "watch"

    def perform(self, hit: Hit) -> Any:
        return PROCEED


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


ACTION_HELP = (
    "an action is an exception class or instance (raised), a callable (called with the target's "
    "arguments), or one of pytest_faultline.actions: Raise, Delay, Return, Call, Stall, Preempt, "
    "Cancel, Disconnect, Watch"
)


def _required_fields(cls: type[Action]) -> list[str]:
    """The constructor parameters of an action class that have no default."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def as_action(action: object) -> Action:
    """The :class:`Action` that ``action`` stands for; :class:`FaultlineError` if none."""
    if isinstance(action, Action):
        return action
    if isinstance(action, type) and issubclass(action, Action):
        needed = _required_fields(action)
        if needed:
            args = ", ".join(f"{n}=..." for n in needed)
            raise FaultlineError(
                f"cannot arm the class {action.__name__}: it needs {', '.join(needed)}; "
                f"pass an instance, e.g. actions.{action.__name__}({args})"
            )
        return action()
    if isinstance(action, BaseException) or (
        isinstance(action, type) and issubclass(action, BaseException)
    ):
        return Raise(action)
    if callable(action) and not isinstance(action, type):
        return Call(action)
    raise FaultlineError(f"cannot arm {action!r}: {ACTION_HELP}")
