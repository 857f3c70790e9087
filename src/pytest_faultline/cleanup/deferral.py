"""Deferral: calls to a target are captured, held, and run later, in order.

Who runs a held call, so that it runs on the thread that would have run it:

* a call made on a thread running an asyncio event loop (a ``call_soon``/``call_later``
  callback, a ``Future`` done-callback) returns at once and is posted back to that loop when
  released, so it runs on the loop's thread; if the loop has stopped by then, it runs on the
  releasing thread (recorded in the event);
* a call to a coroutine function returns its coroutine as usual; the coroutine (or the task
  running it) waits, without blocking the loop, until released, then runs the real body and
  completes with its real result;
* a call made on another thread (a queue worker, a ``threading.Timer`` thread) parks that
  thread at the call until released, then the thread runs the call itself: the worker is
  "late", exactly as a busy worker would be, and messages queued behind it stay behind it;
* a call made on the thread that set up the deferral (the test's thread) or from a
  ``weakref.finalize`` callback cannot be parked without blocking the test itself: it returns
  ``None`` at once and is run later by whichever thread releases it (the test's thread for
  ``until``, ``release()`` and the end of the test).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _raw
from .._context import EventKind
from ..actions import PROCEED, Action, Hit
from ..errors import FaultlineError, FaultlineWarning
from ..targets import CallTarget, is_call_target, path_of, resolve
from ._park import park
from .clock import CLOCK, Clock

if TYPE_CHECKING:
    import asyncio

    from .._context import FaultContext
    from .clock import _Due

__all__ = ["Deferral", "HeldCall"]

PARK_BOUND_S = _raw.PARK_BOUND_S
HANDOFF_BOUND_S = _raw.CALL_BOUND_S  # how long a release waits for a handed-off call
ARGS_SHOWN = 60

DEFER_HELP = (
    "defer() takes a function or method, or its path 'package.module:Qualified.name' "
    "(for example 'myapp.registry:Registry.forget')"
)
UNTIL_HELP = (
    "until is a point name (a place in the code), a 'package.module:Qualified.name' path or a "
    "function: held calls are released each time it returns"
)


@dataclass(eq=False)  # identity: two calls with equal arguments are still two calls
class HeldCall:
    """One captured call: what, from where, and the window it was held for.

    ``held_at`` / ``released_at`` are seconds since the test's controller started (the times of
    the hold and release events); ``trigger`` says what released it.
    """

    index: int
    target: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    thread: str
    mode: str  # "parked", "loop", "coroutine" or "inline"
    held_at: float
    released_at: float | None = None
    ran_on: str | None = None
    trigger: str | None = None
    result: Any = None
    error: BaseException | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    bound: bool = field(default=False, repr=False)  # args[0] is self (or cls)
    _go: _raw.RawEvent = field(default_factory=_raw.RawEvent, repr=False)
    _done: _raw.RawEvent = field(default_factory=_raw.RawEvent, repr=False)
    _future: asyncio.Future[None] | None = field(default=None, repr=False)
    _ident: int = field(default=0, repr=False)
    _due: _Due | None = field(default=None, repr=False)

    @property
    def window(self) -> float | None:
        """Seconds between hold and release, or None while still held."""
        return None if self.released_at is None else self.released_at - self.held_at

    def describe(self) -> str:
        args = self.args[1:] if self.bound else self.args
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in self.kwargs.items()])
        if len(shown) > ARGS_SHOWN:
            shown = shown[: ARGS_SHOWN - 3] + "..."
        return f"#{self.index} {self.target.rpartition(':')[2]}({shown})"


class _ReleaseAtPoint(Action):
    kind = "until"

    def __init__(self, deferral: Deferral) -> None:
        self.deferral = deferral

    def perform(self, hit: Hit) -> Any:
        self.deferral._release_pending(f"until {hit.target!r} was reached")
        return PROCEED

    def describe(self) -> str:
        return f"release calls held by the deferral of {self.deferral.target!r}"


class Deferral:
    """Calls to ``target`` held back and run later (``faultline.defer`` returns one).

    Held calls are released in the order they were made: each time ``until`` returns, when
    their ``seconds`` of clock time have passed, at :meth:`release`, or when the test ends (then
    they run and are reported: a held call is never silently dropped). Use it as a context
    manager to release on exit.
    """

    def __init__(
        self,
        faultline: FaultContext,
        target: str | Callable[..., Any],
        *,
        until: str | Callable[..., Any] | None = None,
        seconds: float | None = None,
    ) -> None:
        self._faultline = faultline
        self.target = _target_path(target)
        self.until = None if until is None else _until_name(until)
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0
        ):
            raise FaultlineError(
                f"defer({self.target!r}): seconds must be a number > 0 (seconds of the test's "
                f"clock), got {seconds!r}"
            )
        self.seconds = None if seconds is None else float(seconds)
        self.active = True
        self._held: list[HeldCall] = []
        self._done: list[HeldCall] = []
        self._lock = _raw.allocate_lock()
        self._home = _raw.get_ident()
        self._held_count = _raw.CountLatch()
        self._count = 0
        call_target = resolve(self.target)
        # Resolve everything before patching anything: a bad until leaves nothing installed.
        until_target = None
        if self.until is not None and is_call_target(self.until):
            until_target = resolve(self.until)
        self._is_coroutine = inspect.iscoroutinefunction(call_target.function)
        self._bound = isinstance(call_target.owner, type) and not isinstance(
            call_target.raw, staticmethod
        )
        self._clock = faultline.service(CLOCK, Clock) if self.seconds is not None else None
        # The report of leftovers runs late in the unwind; the release itself runs when the test
        # body ends (body wrapper) or, at the latest, when teardown wakes paused threads.
        faultline.undo.push(self._report_leftovers, f"report calls held by {self.target}")
        call_target.install(self._make_wrapper)
        faultline.undo.push(call_target.restore, f"restore deferred {self.target}")
        faultline.add_handler("wake", lambda hit: self.finish("test end"))
        faultline.wrap_body(self._body_wrapper)
        if until_target is not None:
            self._release_after(until_target)
        elif self.until is not None:
            faultline.arm(self.until, _ReleaseAtPoint(self))
        when = []
        if self.until is not None:
            when.append(f"until {self.until!r} returns")
        if self.seconds is not None:
            when.append(f"{self.seconds:g}s of clock time")
        faultline.record(
            EventKind.DEFER, self.target, f"calls held {' or '.join(when) or 'until released'}"
        )

    def __repr__(self) -> str:
        return (
            f"<Deferral {self.target!r} pending={len(self._held)} released={len(self._done)}"
            f"{'' if self.active else ' (ended)'}>"
        )

    def __enter__(self) -> Deferral:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- public API ------------------------------------------------------------------------------

    @property
    def pending(self) -> list[HeldCall]:
        """The calls held right now, in the order they were made."""
        with self._lock:
            return list(self._held)

    @property
    def released(self) -> list[HeldCall]:
        """The calls released so far, in the order they were released."""
        with self._lock:
            return list(self._done)

    @property
    def calls(self) -> list[HeldCall]:
        """Every call held by this deferral, released or not, in the order they were made."""
        with self._lock:
            return sorted(self._done + self._held, key=lambda c: c.index)

    def release(self) -> list[HeldCall]:
        """Run every held call now, in order, and stop holding: later calls run directly.

        Returns the calls it released.
        """
        return self.finish("release()")

    def wait(self, n: int = 1, timeout: float = _raw.WAIT_BOUND_S) -> bool:
        """Block until ``n`` calls in all have been held; False on timeout.

        Use it instead of sleeping to know that a worker has reached the deferred call.
        """
        return self._held_count.wait(n, timeout)

    def finish(self, trigger: str) -> list[HeldCall]:
        """Stop holding and release what is held (``release()`` and the test's end call this)."""
        self.active = False
        return self._release_pending(trigger)

    # -- capture ---------------------------------------------------------------------------------

    def _make_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        self._original = original
        if self._is_coroutine:

            async def held_coroutine(*args: Any, **kwargs: Any) -> Any:
                if not self.active:
                    return await original(*args, **kwargs)
                import asyncio  # loaded: a coroutine is running

                loop = asyncio.get_running_loop()
                future: asyncio.Future[None] = loop.create_future()
                call = self._hold(args, kwargs, "coroutine", loop, future)
                try:
                    await future
                except asyncio.CancelledError:
                    if self._take(call):  # cancelled before any release: it never runs
                        call.error = asyncio.CancelledError()
                        self._note_release(
                            call, "cancellation (its task or event loop ended while it was held)"
                        )
                        call._done.set()
                    raise
                return await self._run_coroutine(call, original)

            return held_coroutine

        def held(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return original(*args, **kwargs)
            mode, loop = _mode_of_caller(self._home)
            call = self._hold(args, kwargs, mode, loop)
            if mode != "parked":
                return None
            if not park(call._go, PARK_BOUND_S, f"held call {call.describe()}") and self._take(
                call
            ):
                self._note_release(call, f"the {PARK_BOUND_S:g}s bound on a parked thread")
            return self._execute(call, original, reraise=True)

        return held

    def _hold(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        mode: str,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[None] | None = None,
    ) -> HeldCall:
        thread = _raw.current_thread().name
        with self._lock:
            self._count += 1
            index = self._count
        call = HeldCall(index, self.target, args, kwargs, thread, mode, 0.0, loop=loop)
        call._future = future
        call.bound = self._bound
        call._ident = _raw.get_ident()
        how = {
            "parked": "thread parked at the call",
            "loop": "event-loop callback, re-posted on release",
            "coroutine": "coroutine waits for release",
            "inline": "returned None to the caller",
        }[mode]
        event = self._faultline.record(
            EventKind.HOLD, self.target, f"{call.describe()} held ({how})"
        )
        call.held_at = event.time
        with self._lock:
            self._held.append(call)
            self._held.sort(key=lambda c: c.index)  # a concurrent hold may have come in first
        self._held_count.arrive()
        if self._clock is not None and self.seconds is not None:
            call._due = self._clock._schedule(
                self.seconds,
                f"held {call.describe()}",
                lambda wait: self._release_by_clock(call),
                lambda: None,
            )
        return call

    # -- release ---------------------------------------------------------------------------------

    def _take(self, call: HeldCall) -> bool:
        with self._lock:
            if call not in self._held:
                return False
            self._held.remove(call)
            self._done.append(call)
        if call._due is not None:
            call._due.done = True
        return True

    def _release_pending(self, trigger: str) -> list[HeldCall]:
        with self._lock:
            calls = list(self._held)
        released = [call for call in calls if self._release_one(call, trigger)]
        return released

    def _release_one(self, call: HeldCall, trigger: str) -> bool:
        if not self._take(call):
            return False  # another trigger got there first
        self._note_release(call, trigger)
        if call.mode == "parked":
            call._go.set()
            self._await_handoff(call)
        elif call.mode == "coroutine":
            self._wake_coroutine(call)
        elif call.mode == "loop" and _loop_elsewhere(call.loop):
            assert call.loop is not None
            call.loop.call_soon_threadsafe(self._execute, call, self._original, False)
            self._await_handoff(call)
        else:
            self._execute(call, self._original, reraise=False)
        return True

    def _release_by_clock(self, call: HeldCall) -> None:
        self._release_one(call, f"{self.seconds:g}s of clock time passed")

    def _note_release(self, call: HeldCall, trigger: str) -> None:
        call.trigger = trigger
        call.released_at = self._faultline.record(
            EventKind.RELEASE, self.target, f"{call.describe()} released by {trigger}"
        ).time

    def _await_handoff(self, call: HeldCall) -> None:
        if _raw.get_ident() == call._ident:
            return  # never wait on ourselves
        if not call._done.wait(HANDOFF_BOUND_S):
            self._faultline.record(
                EventKind.RELEASE,
                self.target,
                f"{call.describe()} still running on [{call.thread}] {HANDOFF_BOUND_S:g}s after "
                f"its release; not waiting longer (does it wait for the releasing thread?)",
            )

    def _wake_coroutine(self, call: HeldCall) -> None:
        call._go.set()
        future, loop = call._future, call.loop
        if future is None or loop is None:
            return
        if loop.is_closed():
            self._faultline.record(
                EventKind.RELEASE,
                self.target,
                f"{call.describe()} could not run: its event loop is closed",
            )
            call._done.set()
            return
        if _loop_elsewhere(loop):
            loop.call_soon_threadsafe(_resolve, future)
        else:
            _resolve(future)

    def _execute(self, call: HeldCall, original: Callable[..., Any], reraise: bool) -> Any:
        call.ran_on = _raw.current_thread().name
        try:
            call.result = original(*call.args, **call.kwargs)
        except BaseException as exc:
            call.error = exc
            if reraise:  # a parked thread raises where the original would have raised
                raise
        finally:
            # Recorded before the releaser (waiting on _done) goes on: events stay in order.
            self._record_ran(call)
            call._done.set()
        return call.result

    async def _run_coroutine(self, call: HeldCall, original: Callable[..., Any]) -> Any:
        call.ran_on = _raw.current_thread().name
        try:
            call.result = await original(*call.args, **call.kwargs)
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            self._record_ran(call)
            call._done.set()
        return call.result

    def _record_ran(self, call: HeldCall) -> None:
        outcome = "returned" if call.error is None else f"raised {call.error!r}"
        moved = "" if call.ran_on == call.thread else f" (held on [{call.thread}])"
        self._faultline.record(
            EventKind.RAN,
            self.target,
            f"{call.describe()} {outcome} on [{call.ran_on}]{moved}; window: held at "
            f"{call.held_at * 1000:.3f} ms, released at {(call.released_at or 0.0) * 1000:.3f} ms "
            f"by {call.trigger}",
        )

    # -- triggers --------------------------------------------------------------------------------

    def _release_after(self, until_target: CallTarget) -> None:
        label = f"{until_target.path!r} returned"

        def make_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(original):

                async def released_after_async(*args: Any, **kwargs: Any) -> Any:
                    try:
                        return await original(*args, **kwargs)
                    finally:
                        self._release_pending(f"until {label}")

                return released_after_async

            def released_after(*args: Any, **kwargs: Any) -> Any:
                try:
                    return original(*args, **kwargs)
                finally:
                    self._release_pending(f"until {label}")

            return released_after

        until_target.install(make_wrapper)
        self._faultline.undo.push(until_target.restore, f"restore until-target {label}")

    def _body_wrapper(self, call: Callable[[], object]) -> object:
        # Each run of the body (the scheduler re-runs it) holds afresh and releases at its end,
        # before the test's fixtures are torn down, so no worker stays parked into teardown.
        self.active = True
        try:
            return call()
        finally:
            self.finish("test end")

    def _report_leftovers(self) -> None:
        self.finish("test end")
        late = [c for c in self._done if c.trigger == "test end"]
        failed = [
            c
            for c in self._done
            if c.error is not None and (c.mode != "parked" or c.ran_on is None)
        ]
        if late and (self.until is not None or self.seconds is not None):
            shown = ", ".join(c.describe() for c in late)
            expected = f"until {self.until!r}" if self.until else f"{self.seconds:g}s of clock time"
            warning: str | None = (
                f"faultline: {len(late)} call(s) to {self.target!r} were still held when the "
                f"test ended and ran then: {shown}. Their release ({expected}) never came; "
                f"check that the code reaches it, or advance the clock"
            )
        else:
            warning = None
        if failed:
            shown = "; ".join(f"{c.describe()}: {c.error!r}" for c in failed)
            warning = (warning + "\n" if warning else "") + (
                f"faultline: held call(s) to {self.target!r} raised when they ran: {shown}"
            )
        if warning:
            import warnings

            warnings.warn(FaultlineWarning(warning), stacklevel=2)


def _target_path(target: object) -> str:
    if isinstance(target, str):
        if not is_call_target(target):
            raise FaultlineError(
                f"defer({target!r}): a point name marks a place, not a call, and cannot be "
                f"deferred; {DEFER_HELP}"
            )
        return target
    if callable(target):
        return path_of(target)
    raise FaultlineError(f"defer() cannot hold calls to {target!r}; {DEFER_HELP}")


def _until_name(until: object) -> str:
    if isinstance(until, str) and until:
        return until
    if callable(until) and not isinstance(until, type):
        return path_of(until)
    raise FaultlineError(f"defer(until={until!r}) is not understood; {UNTIL_HELP}")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # asyncio is imported only by those who use it (13 ms): no asyncio loaded, no loop running.
    module = sys.modules.get("asyncio")
    return None if module is None else module._get_running_loop()


def _mode_of_caller(home: int) -> tuple[str, asyncio.AbstractEventLoop | None]:
    loop = _running_loop()
    if loop is not None:
        return "loop", loop
    if _raw.get_ident() == home or _called_by_finalizer():
        return "inline", None
    return "parked", None


def _called_by_finalizer() -> bool:
    frame = sys._getframe(3)  # the caller of the deferral's wrapper, and two above it
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_globals.get("__name__") in ("weakref", "gc"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _loop_elsewhere(loop: asyncio.AbstractEventLoop | None) -> bool:
    """True when ``loop`` runs on another thread than this one (post to it and wait)."""
    if loop is None or loop.is_closed() or not loop.is_running():
        return False
    return _running_loop() is not loop


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
