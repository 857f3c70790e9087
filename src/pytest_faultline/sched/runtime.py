"""The baton: managed threads run one at a time, and the scheduler picks who runs next.

A *managed* thread is the body of a run or a thread started (``Thread.start``) by a managed thread
while the run is active. Each has a *gate*, a raw lock kept locked; the thread that holds the
baton opens the next thread's gate and then waits on its own. At every scheduling point (an
operation on a patched primitive, ``time.sleep``, a fault point, optionally every line) the
strategy chooses among the threads that can run. Internal bookkeeping uses only ``_raw``
primitives: the ``threading`` module is patched while a run is active.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from .. import _raw, _sites
from ..errors import DeadlockError, FaultlineError
from .steps import Decision, Step

if TYPE_CHECKING:
    from types import FrameType
    from typing import Protocol

    from ..decider import Stream

    # For the type checker only (building a Protocol costs ~0.2 ms at import).
    class Strategy(Protocol):
        """Chooses the next thread. ``pick`` returns an index into ``alts`` and must record it in
        ``sched.stream`` (the recorded stream the replay token is made of)."""

        name: str

        def pick(self, sched: Scheduler, me: ThreadRecord, alts: list[ThreadRecord]) -> int: ...


__all__ = ["Abort", "Decision", "Scheduler", "Step", "ThreadRecord", "current"]

READY, BLOCKED, OUTSIDE, DONE = "ready", "blocked", "outside", "done"
# A thread whose run was stopped: Abort was raised in it once, and from then on it runs as an
# ordinary thread (real locks, real waits) so that its ``finally`` blocks and ``with`` exits run.
UNWINDING = "unwinding"
# A thread that held the baton but sat in a call the scheduler cannot see (a lock created before
# the run, C code) for this long is moved outside, as a blocking socket call is, so the others run.
EVICT_AFTER_S = 0.005
BLOCKING_OPS = frozenset({"acquire", "join"})  # shown as "acquire (blocked)" when they wait
DEADLOCK_GRACE_S = 0.002  # real time given to other threads before "all blocked" is final
FOREIGN_POLL_S = 0.0005
FOREIGN_GRACE_S = 0.1  # when threads outside the run touched managed primitives
TRACE_STEPS = 200

PKG_PREFIX = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# One frame filter and one way to print a site, shared with the lock-order reports.
is_internal = _sites.is_plumbing
user_frame = _sites.user_frame
site_of = _sites.site


class Abort(BaseException):
    """Unwinds a managed thread when its run has ended (failure, deadlock, stall).

    A ``BaseException`` so that ``except Exception`` in the code under test does not swallow it.
    """


class ThreadRecord:
    """A managed thread as the scheduler sees it (a plain class, not a dataclass: this module is
    imported by the first exploration, and building a dataclass costs a millisecond)."""

    __slots__ = (
        "deadline",
        "entered",
        "evicted",
        "gate",
        "ident",
        "index",
        "noted",
        "op",
        "pred",
        "resource",
        "site",
        "state",
        "thread",
    )

    def __init__(self, index: int, thread: threading.Thread | None, gate: Any) -> None:
        self.index = index
        self.thread = thread
        self.gate = gate  # a raw lock, locked while the thread may not run
        self.state = READY
        self.ident: int | None = None
        self.pred: Callable[[], bool] | None = None
        self.deadline: float | None = None
        self.op = "start"
        self.resource: object = None
        self.site = "?"
        self.entered = False
        self.noted: tuple[str, str] = ("", "")
        self.evicted = ""  # what the supervisor saw it blocked in, when it moved it outside

    @property
    def label(self) -> str:
        return f"T{self.index}"

    @property
    def title(self) -> str:
        name = self.thread.name if self.thread is not None else "?"
        return f"T{self.index} ({'main' if self.index == 0 else name})"

    def __repr__(self) -> str:
        return f"<{self.title} {self.state}>"

    @property
    def _fl_name(self) -> str:
        return self.label

    def holders(self) -> list[ThreadRecord]:
        """Joining a thread waits for that thread (the wait-for graph's edge)."""
        return [self] if self.state != DONE else []


def resource_name(obj: object) -> str:
    return getattr(obj, "_fl_name", None) or type(obj).__name__


def _holders_of(resource: object) -> list[ThreadRecord]:
    holders = getattr(resource, "holders", None)
    return list(holders()) if callable(holders) else []


_ACTIVE: list[Scheduler | None] = [None]


def active() -> Scheduler | None:
    return _ACTIVE[0]


def current() -> tuple[Scheduler, ThreadRecord] | None:
    """The active scheduler and the calling thread's record, or None if it is not managed."""
    sched = _ACTIVE[0]
    if sched is None:
        return None
    rec = sched.by_ident.get(_raw.get_ident())
    if rec is None or rec.state is DONE or rec.state is UNWINDING:
        return None
    return sched, rec


def note_foreign() -> None:
    """An unmanaged thread used a managed primitive: "all blocked" may then be temporary."""
    sched = _ACTIVE[0]
    if sched is not None:
        sched.foreign = True


class Scheduler:
    """One run: its managed threads, its virtual time, its decisions and its trace."""

    def __init__(
        self,
        strategy: Strategy,
        stream: Stream,
        *,
        stall_timeout: float,
        max_steps: int,
    ) -> None:
        self.strategy = strategy
        self.stream = stream
        self.stall_timeout = stall_timeout
        self.max_steps = max_steps
        self.line_hook: Any = None
        self.threads: list[ThreadRecord] = []
        self.by_ident: dict[int, ThreadRecord] = {}
        self.current: ThreadRecord | None = None
        self.vtime = 0.0
        self.mono0 = _raw.monotonic()
        self.wall0 = _raw.time_time()
        self.clock: Any = None  # the test's running clock: then virtual time is its time
        self._clock_seen = 0.0
        self.steps = 0
        self.progress = 0
        self.decisions: list[Decision] = []
        self.trace: deque[Step] = deque(maxlen=TRACE_STEPS)
        self.preempted_at: set[int] = set()  # steps after which the running thread was preempted
        self.failure: BaseException | None = None
        self.failure_thread: ThreadRecord | None = None
        self.aborted = False
        self.stalled = False
        self.foreign = False
        self.supervisor = _raw.get_ident()  # the thread that runs the exploration and waits
        self.abandoned: list[ThreadRecord] = []
        self.all_done = _raw.RawEvent()
        self._counters: dict[str, int] = {}
        self._exit_lock = _raw.allocate_lock()
        self._baton = _raw.allocate_lock()  # guards a free baton (current is None)

    # -- virtual time ---------------------------------------------------------------------------

    def use_clock(self, clock: Any) -> None:
        self.clock = clock
        self._clock_seen = clock.monotonic()

    def monotonic(self) -> float:
        """``time.monotonic()`` in a managed thread."""
        return float(self.clock.monotonic()) if self.clock is not None else self.mono0 + self.vtime

    def wall(self) -> float:
        """``time.time()`` in a managed thread."""
        return float(self.clock.time()) if self.clock is not None else self.wall0 + self.vtime

    def sync_clock(self) -> None:
        """The clock moved (the test advanced it, or we did): virtual time follows."""
        now = float(self.clock.monotonic())
        if now > self._clock_seen:
            self.vtime += now - self._clock_seen
            self._clock_seen = now

    def _advance_to(self, target: float) -> None:
        if target <= self.vtime:
            return
        if self.clock is None:
            self.vtime = target
            return
        # Timers and held calls due on the way fire (their threads wake through parking).
        self.clock.advance(target - self.vtime, wait=False)
        self.sync_clock()
        self.vtime = max(self.vtime, target)

    # -- resources and threads ------------------------------------------------------------------

    def name_resource(self, obj: object, prefix: str) -> None:
        """Name a primitive created during the run: the attribute or variable it was assigned to,
        as lock-order reports name it, with a short id (``Odb._odb_lock (R1)``), else the id."""
        number = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = number
        kind = type(obj).__name__.removeprefix("Managed")
        attr = _sites.lock_class_here(kind, 0).attr
        obj._fl_name = _sites.lock_name(attr, prefix, number)  # type: ignore[attr-defined]
        obj._fl_site = site_of(user_frame(3))  # type: ignore[attr-defined]

    def new_thread(self, thread: threading.Thread | None) -> ThreadRecord:
        gate = _raw.allocate_lock()
        gate.acquire()
        rec = ThreadRecord(index=len(self.threads), thread=thread, gate=gate)
        self.threads.append(rec)
        if self.aborted:
            # The abort (Ctrl-C, a failure elsewhere) may have opened the gates before this
            # thread was listed: open its own, so it unwinds instead of waiting forever.
            with contextlib.suppress(RuntimeError):
                gate.release()
        return rec

    def run_managed(self, rec: ThreadRecord, target: Callable[[], object]) -> None:
        """The body of a managed thread: wait for the baton, run ``target``, hand the baton on."""
        exc: BaseException | None = None
        hook = self.line_hook
        try:
            self.enter(rec)
            if hook is not None:
                hook.thread_enter()
            target()
        except BaseException as caught:
            exc = caught
        finally:
            if hook is not None:
                hook.thread_exit()
            self.exit(rec, exc)

    def record_of(self, thread: threading.Thread) -> ThreadRecord | None:
        for rec in self.threads:
            if rec.thread is thread:
                return rec
        return None

    def enter(self, rec: ThreadRecord) -> None:
        """Called first thing in a managed thread: register it and wait for the baton."""
        rec.ident = _raw.get_ident()
        self.by_ident[rec.ident] = rec
        rec.entered = True
        self._wait(rec)

    def exit(self, rec: ThreadRecord, exc: BaseException | None) -> None:
        """Called last thing in a managed thread: hand the baton on."""
        if rec.evicted and not self.aborted:
            with contextlib.suppress(Abort):
                self._back(rec)
        if exc is not None and not isinstance(exc, (Abort, SystemExit)) and not self.aborted:
            # (After an abort, errors are consequences of the unwinding, not failures.)
            self.fail(exc, rec)
        was_running = self.current is rec and not self.aborted
        with self._exit_lock:
            rec.state = DONE
            rec.op = "exit"
            self.progress += 1
            if all(t.state == DONE for t in self.threads):
                self.all_done.set()
                return
        if not was_running:
            return
        with contextlib.suppress(Abort):
            self._note(rec, "exit", site=rec.site)
            self._schedule(rec)

    # -- scheduling points ----------------------------------------------------------------------

    def point(
        self, me: ThreadRecord, op: str, resource: object = None, site: str | None = None
    ) -> None:
        """A scheduling point in ``me`` (which holds the baton): maybe switch to another thread."""
        if me.evicted:
            self._back(me)
        if site is None:
            site = site_of(user_frame(3))
        self._note(me, op if resource is None else f"{op} {resource_name(resource)}", site)
        self._schedule(me)

    def preempt(self, me: ThreadRecord) -> None:
        """Force a switch to another runnable thread, if there is one (the Preempt action)."""
        if me.evicted:
            self._back(me)
        self._note(me, "preempt", site_of(user_frame(3)))
        self._schedule(me, force_other=True)

    def block(
        self,
        me: ThreadRecord,
        op: str,
        resource: object,
        pred: Callable[[], bool] | None,
        timeout: float | None,
    ) -> bool:
        """Wait until ``pred()`` holds or ``timeout`` virtual seconds pass; True if it holds."""
        if me.evicted:
            self._back(me)
        me.state = BLOCKED
        me.pred = pred
        me.deadline = None if timeout is None else self.vtime + max(timeout, 0.0)
        me.op = op
        me.resource = resource
        site = site_of(user_frame(3))
        text = f"{op} {resource_name(resource)}" if resource is not None else op
        if op in BLOCKING_OPS:
            shown = f"{op} (blocked)" + (
                f" {resource_name(resource)}" if resource is not None else ""
            )
            last = self.trace[-1] if self.trace else None
            if (
                me.noted == (text, site)
                and last is not None
                and last.thread == me.index
                and last.op == text
            ):
                # The operation's point was the last step: it blocked there, say so in place.
                self.trace[-1] = last._replace(op=shown)
                me.noted = (shown, site)
            else:
                self._note(me, shown, site)
        elif me.noted != (text, site):
            self._note(me, text, site)  # not twice when the operation's point was just noted
        me.site = site
        try:
            self._schedule(me)
        finally:
            if me.state == BLOCKED:  # (not UNWINDING: Abort is raised in a thread once)
                me.state = READY
            me.pred = None
            me.deadline = None
            me.resource = None
        return pred is not None and pred()

    def leave(self, me: ThreadRecord, op: str) -> None:
        """``me`` is about to block in a call the scheduler cannot see (a socket, select):
        let the other threads run meanwhile."""
        if me.evicted:
            self._back(me)
        self._note(me, op, site_of(user_frame(3)))
        me.state = OUTSIDE
        me.op = op
        self._schedule(me)

    @contextlib.contextmanager
    def outside(self, me: ThreadRecord, op: str) -> Iterator[None]:
        """Run the body outside the scheduler (a call it cannot see into), then rejoin."""
        self.leave(me, op)
        try:
            yield
        finally:
            self.rejoin(me)

    def _back(self, me: ThreadRecord) -> None:
        """``me`` was moved outside while in a call the scheduler cannot see, and has come back
        to a scheduling point: wait for the baton before going on."""
        self.rejoin(me)

    def evict(self, me: ThreadRecord, what: str) -> bool:
        """(The supervisor) ``me`` holds the baton but has sat in a call the scheduler cannot see
        for ``EVICT_AFTER_S``: move it outside and let another thread run."""
        with self._baton:
            if self.aborted or self.current is not me or me.state != READY:
                return False
            me.state = OUTSIDE
            me.evicted = what
            self.steps += 1
            self.trace.append(Step(self.steps, me.index, f"{what} (blocked)", me.site))
            ready = [t for t in self._ready() if t is not me]
            if not ready:
                self.current = None  # the first thread to come back takes the baton
                return True
            nxt = ready[0]
            self.current = nxt
            self.progress += 1
        nxt.gate.release()
        return True

    def rejoin(self, me: ThreadRecord) -> None:
        """``me`` is back from outside: wait for the baton (or take it if nobody holds it)."""
        self.progress += 1
        me.evicted = ""
        with self._baton:
            me.state = READY
            if self.aborted:
                me.state = UNWINDING
                raise Abort
            if self.current is None:
                self.current = me
                return
        self._wait(me)

    def sleep(self, me: ThreadRecord, seconds: float) -> None:
        if seconds <= 0:
            self.point(me, "sleep(0)")
            return
        self.block(me, f"sleep({seconds:g})", None, None, seconds)

    def _note(self, me: ThreadRecord, op: str, site: str) -> None:
        if self.aborted:
            self._unwind(me)
        self.steps += 1
        me.site = site
        me.noted = (op, site)
        self.trace.append(Step(self.steps, me.index, op, site))

    # -- the choice ------------------------------------------------------------------------------

    def _ready(self) -> list[ThreadRecord]:
        vtime = self.vtime
        out = []
        for t in self.threads:
            state = t.state
            if state == READY or (
                state == BLOCKED
                and (
                    (t.pred is not None and t.pred())
                    or (t.deadline is not None and t.deadline <= vtime)
                )
            ):
                out.append(t)
        return out

    def _unwind(self, me: ThreadRecord) -> NoReturn:
        """The run was stopped: raise Abort in ``me``, once; from then on it is an ordinary
        thread (``current()`` no longer finds it), so its cleanup runs with real primitives."""
        if me.state != DONE:
            me.state = UNWINDING
        raise Abort

    def _schedule(self, me: ThreadRecord, *, force_other: bool = False) -> None:
        if self.aborted:
            self._unwind(me)
        self.progress += 1
        if self.progress > self.max_steps:
            self._too_many_steps(me)
        ready = self._ready()
        if not ready:
            ready = self._stuck(me)
            if not ready:  # the baton is free until a thread comes back from outside
                if me.state not in (DONE, OUTSIDE):
                    self._wait(me)
                return
        me_ready = me in ready
        if me_ready:
            alts = [me, *(t for t in ready if t is not me)]
            if force_other and len(alts) > 1:
                alts = alts[1:]
                me_ready = False
        else:
            alts = ready
        if len(alts) == 1:
            nxt = alts[0]
        else:
            k = self.strategy.pick(self, me, alts)
            self.decisions.append(Decision(len(alts), k, me_ready))
            nxt = alts[k]
        if nxt is not me:
            if me_ready:
                self.preempted_at.add(self.steps)  # the swimlane marks the step
            self.current = nxt
            nxt.gate.release()
            if me.state not in (DONE, OUTSIDE):
                self._wait(me)

    def _wait(self, me: ThreadRecord) -> None:
        me.gate.acquire()
        if self.aborted:
            me.gate.release()  # stays open: every later wait of this thread returns at once
            self._unwind(me)

    def _stuck(self, me: ThreadRecord) -> list[ThreadRecord]:
        """No thread can run: advance virtual time, wait for unmanaged threads, or fail."""
        grace_end: float | None = None
        while True:
            deadlines = [
                t.deadline for t in self.threads if t.state == BLOCKED and t.deadline is not None
            ]
            due = self.clock.next_due() if self.clock is not None else None
            if due is not None:
                deadlines.append(self.vtime + due)
            if deadlines:
                self._advance_to(min(deadlines))
                ready = self._ready()
                if ready:
                    return ready
            if self.aborted:
                self._unwind(me)
            body_done = self.threads[0].state == DONE
            if body_done and not self.foreign:
                self._abandon(me)
            if any(t.state == OUTSIDE for t in self.threads):
                # A thread is in a call the scheduler cannot see (real I/O): free the baton; the
                # first thread to come back takes it.
                with self._baton:
                    ready = self._ready()
                    if ready:
                        return ready
                    self.current = None
                return []
            if grace_end is None:
                grace_end = _raw.monotonic() + self._grace()
            if _raw.monotonic() >= grace_end:
                if body_done:
                    self._abandon(me)
                from .report import deadlock_message

                self.fail(DeadlockError(deadlock_message(self, me)), me)
                self._unwind(me)
            # An unmanaged thread may release what a managed one waits for: poll in real time.
            _raw.sleep(FOREIGN_POLL_S)
            ready = self._ready()
            if ready:
                return ready

    def _abandon(self, me: ThreadRecord) -> NoReturn:
        """The body returned and what is left waits forever (workers nobody stopped): unwind
        them; the run passes."""
        self.abandoned = [t for t in self.threads if t.state != DONE]
        self._abort()
        self._unwind(me)

    def _grace(self) -> float:
        """Real seconds to wait before "every managed thread is blocked" is a deadlock."""
        if not self.foreign:
            return 0.0 if self._alone() else DEADLOCK_GRACE_S
        for t in self.threads:
            res = t.resource
            locked = getattr(res, "locked", None)
            if t.state == BLOCKED and callable(locked) and locked() and not _holders_of(res):
                return self.stall_timeout  # a thread outside the run holds it: wait for it
        return FOREIGN_GRACE_S

    def _alone(self) -> bool:
        """No Python thread but the run's own and the exploring one exists: nothing outside the
        run can release what its threads wait for, so no grace is due."""
        ours = {t.ident for t in self.threads}
        ours.add(self.supervisor)
        return all(ident in ours for ident in self.frames())

    def _too_many_steps(self, me: ThreadRecord) -> None:
        if self.threads[0].state == DONE:
            self._abandon(me)
        self.fail(
            FaultlineError(
                f"the run did not finish within {self.max_steps} scheduling steps: a livelock, an "
                f"endless loop, or a run larger than expected (raise max_steps= if so)"
            ),
            self.current,
        )
        self._unwind(me)

    # -- ending a run ----------------------------------------------------------------------------

    def fail(self, exc: BaseException, thread: ThreadRecord | None) -> None:
        """Record the run's failure (the first one wins) and unwind every managed thread."""
        if self.failure is None:
            self.failure = exc
            self.failure_thread = thread
        self._abort()

    def _abort(self) -> None:
        self.aborted = True
        for t in self.threads:
            if t.state != DONE:
                with contextlib.suppress(RuntimeError):  # already open
                    t.gate.release()

    def stall(self) -> None:
        """The current thread has not come back to the scheduler: report it with every stack."""
        from .report import stall_message

        self.stalled = True
        self.fail(DeadlockError(stall_message(self)), self.current)

    def frames(self) -> dict[int, FrameType]:
        # CPython builds this dict while holding the interpreter's thread-list lock; a GC pass
        # started by that allocation can free a threading.local, whose cleanup takes the same
        # lock, and the thread deadlocks itself (seen on 3.11 in a deadlock report). No GC here.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return sys._current_frames()
        finally:
            if enabled:
                gc.enable()
