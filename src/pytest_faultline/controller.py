"""The per-test controller behind the ``faultline`` fixture.

It owns the test's decider (seed and token), its fault events, its armings, and one undo stack
that every patch of every feature is pushed on and that is unwound in reverse order, always.
"""

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import _points, _raw
from .actions import PROCEED, Action, Disconnect, Hit, Stall, as_action
from .decider import Decider, ReplayToken
from .errors import FaultlineError, UnreachedPointWarning
from .registry import REGISTRY
from .targets import CallTarget, is_call_target, path_of, resolve

if TYPE_CHECKING:
    from faker import Faker

__all__ = ["Arming", "FaultEvent", "Faultline", "UndoStack"]

WAIT_BOUND_S = 10.0


@dataclass(frozen=True)
class FaultEvent:
    """One thing a fault did: ``kind`` (raise, delay, stall, scenario, ...), the target ``name``,
    the ``thread`` it happened on, a human ``detail``, and ``time`` in seconds since the test's
    controller started (real time, not the test's virtual clock)."""

    kind: str
    name: str
    thread: str
    detail: str
    time: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.time * 1000:9.3f} ms  [{self.thread}] {self.kind} {self.name}: {self.detail}"


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
        errors: list[tuple[str, BaseException]] = []
        while self._items:
            fn, label = self._items.pop()
            try:
                fn()
            except BaseException as exc:
                errors.append((label, exc))
        return errors


class Arming:
    """One ``faultline.arm(...)``: where, what, and when it fires. Counts every arrival."""

    def __init__(
        self,
        faultline: Faultline,
        target: str,
        action: Action,
        *,
        times: int | None,
        after: int,
        probability: float,
        strict: bool,
        index: int,
    ) -> None:
        self.faultline = faultline
        self.target = target
        self.action = action
        self.times = times
        self.after = after
        self.probability = probability
        self.strict = strict
        self.hits = 0
        self.fired = 0
        self.active = True
        self._stream = faultline.decider.stream(f"arm:{target}#{index}")
        self._lock = _raw.allocate_lock()
        self._waiters: list[tuple[int, _raw.RawEvent]] = []

    def __repr__(self) -> str:
        return (
            f"<Arming {self.target!r} {self.action.describe()} hits={self.hits} fired={self.fired}>"
        )

    def arrive(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Count an arrival; perform the action if it fires. Returns PROCEED or a value."""
        __tracebackhide__ = True
        if not self.active:
            return PROCEED
        with self._lock:
            self.hits += 1
            count = self.hits
            fire = (
                count > self.after
                and (self.times is None or self.fired < self.times)
                and self._stream.chance(self.probability)
            )
            if fire:
                self.fired += 1
            ready = [ev for need, ev in self._waiters if count >= need]
            self._waiters = [(n, ev) for n, ev in self._waiters if count < n]
        for ev in ready:
            ev.set()
        if not fire:
            return PROCEED
        detail = self.action.describe()
        if kwargs and not args:
            detail += " " + ", ".join(f"{k}={v!r}" for k, v in list(kwargs.items())[:4])
        self.faultline.record(self.action.kind, self.target, f"{detail} (hit {count})")
        thread = _raw.current_thread().name
        hit = Hit(self.target, args, kwargs, count, thread, self.faultline, self)
        return self.action.perform(hit)

    def wait(self, hits: int = 1, timeout: float = WAIT_BOUND_S) -> bool:
        """Block until the target has been reached ``hits`` times in all; False on timeout.

        Use it instead of sleeping to know that another thread got to the target.
        """
        with self._lock:
            if self.hits >= hits:
                return True
            ev = _raw.RawEvent()
            self._waiters.append((hits, ev))
        return ev.wait(timeout)

    def release(self) -> None:
        """Let threads held by a :class:`~pytest_faultline.actions.Stall` go on."""
        if isinstance(self.action, Stall):
            self.action.release()

    def disarm(self) -> None:
        """Stop firing from now on (hits are still counted while the test runs)."""
        self.active = False
        self.release()


class Faultline:
    """The ``faultline`` fixture: one controller per test. See the fixture's docs."""

    def __init__(
        self,
        *,
        seed: int,
        nodeid: str = "",
        token: ReplayToken | None = None,
        settings: Any = None,
    ) -> None:
        from .decider import test_fingerprint

        self.nodeid = nodeid
        self.decider = Decider(seed, test=test_fingerprint(nodeid), token=token)
        self.settings = settings
        self.events: list[FaultEvent] = []
        self.scenarios: list[tuple[str, dict[str, Any]]] = []
        self.undo = UndoStack()
        self.closed = False
        self.usage_error = False
        self._t0 = _raw.monotonic()
        self._events_lock = _raw.allocate_lock()
        self._armings: dict[str, list[Arming]] = {}
        self._arrivals: dict[str, int] = {}
        self._handlers: dict[str, list[Callable[[Hit], object]]] = {}
        self._body_wrappers: list[Callable[[Callable[[], object]], object]] = []
        self._services: dict[str, Any] = {}
        self._random: random.Random | None = None
        self._fake: Faker | None = None

    # -- identity -------------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """This test's seed: the session seed mixed with the test's node id."""
        return self.decider.seed

    @property
    def random(self) -> random.Random:
        """A ``random.Random`` seeded from the test's seed, for the test's own choices."""
        if self._random is None:
            self._random = self.decider.random("user")
        return self._random

    @property
    def fake(self) -> Faker:
        """A ``faker.Faker`` seeded from the test's seed: generated data replays with the token."""
        if self._fake is None:
            from faker import Faker

            fake = Faker()
            fake.seed_instance(self.decider.random("faker").getrandbits(32))
            self._fake = fake
        return self._fake

    def token(self) -> str:
        """The replay token of the run so far."""
        return self.decider.token().encode()

    # -- events ---------------------------------------------------------------------------------

    def record(self, kind: str, name: str, detail: str = "") -> FaultEvent:
        """Append a :class:`FaultEvent` (features and scenarios call this for every injection)."""
        event = FaultEvent(
            kind, name, _raw.current_thread().name, detail, _raw.monotonic() - self._t0
        )
        with self._events_lock:
            self.events.append(event)
        return event

    # -- arming ---------------------------------------------------------------------------------

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
        """Make ``target`` perform ``action`` when reached; undone when the test ends.

        ``target`` is a point name, ``"pkg.mod:Qual.name"``, or a function or method (found by
        its module and qualified name). ``action`` is an exception (raised), a callable (called
        with the target's arguments) or an action from :mod:`pytest_faultline.actions`. The
        action fires on hits ``after+1`` to ``after+times``, each with ``probability`` drawn
        from the test's seed. A target never reached warns at the end of the test; with
        ``strict=True`` (or ini ``faultline_strict``) it fails the test.
        """
        self._check_open()
        if callable(target) and not isinstance(target, str):
            target = path_of(target)
        if not isinstance(target, str) or not target:
            raise FaultlineError(
                f"arm() needs a point name or 'pkg.mod:Qual.name' as target, got {target!r}"
            )
        act = as_action(action)
        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 1
        ):
            raise FaultlineError(
                f"arm({target!r}): times must be a whole number >= 1 or None, got {times!r}"
            )
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise FaultlineError(
                f"arm({target!r}): after must be a whole number >= 0, got {after!r}"
            )
        if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
            raise FaultlineError(
                f"arm({target!r}): probability must be between 0.0 and 1.0, got {probability!r}"
            )
        if isinstance(act, Disconnect):
            # Connections are tracked from the socket layer's first use: start it now, so the
            # disconnect also drops connections made before the target is reached.
            self.sockets  # noqa: B018
        if strict is None:
            strict = bool(getattr(self.settings, "strict", False))
        armings = self._armings.get(target)
        if armings is None:
            if is_call_target(target):
                self._wrap_call_target(resolve(target))
            else:
                self._arm_point(target)
            armings = []
            self._armings[target] = armings
        arming = Arming(
            self,
            target,
            act,
            times=times,
            after=after,
            probability=float(probability),
            strict=strict,
            index=len(armings),
        )
        armings.append(arming)
        return arming

    def _dispatch(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        with self._events_lock:
            self._arrivals[target] = self._arrivals.get(target, 0) + 1
        for arming in list(self._armings.get(target, ())):
            result = arming.arrive(args, kwargs)
            if result is not PROCEED:
                return result
        return PROCEED

    def _arm_point(self, name: str) -> None:
        def dispatcher(point_name: str, context: dict[str, Any]) -> Any:
            __tracebackhide__ = True
            result = self._dispatch(point_name, (), context)
            return None if result is PROCEED else result

        _points.arm_point(name, dispatcher)
        self.undo.push(lambda: _points.disarm_point(name, dispatcher), f"disarm point {name}")

    def _wrap_call_target(self, call_target: CallTarget) -> None:
        path = call_target.path

        def make_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True
                result = self._dispatch(path, args, kwargs)
                if result is not PROCEED:
                    return result
                return original(*args, **kwargs)

            return wrapper

        call_target.install(make_wrapper)
        self.undo.push(call_target.restore, f"restore {path}")

    def armings(self, target: str | None = None) -> list[Arming]:
        """Every arming of this test, or those of ``target``."""
        if target is None:
            return [a for group in self._armings.values() for a in group]
        return list(self._armings.get(target, ()))

    def hits(self, target: str | Callable[..., Any]) -> int:
        """How many times the armed ``target`` was reached (whether or not a fault fired)."""
        if callable(target) and not isinstance(target, str):
            target = path_of(target)
        if target not in self._armings:
            armed = ", ".join(sorted(self._armings)) or "nothing"
            raise FaultlineError(
                f"hits({target!r}): that target is not armed in this test (armed: {armed}); "
                f"hits are counted for armed targets only, so arm it first, for example "
                f"faultline.arm({target!r}, actions.Watch())"
            )
        return self._arrivals.get(target, 0)

    # -- extension points used by scenarios and the other features ------------------------------

    def add_handler(self, kind: str, fn: Callable[[Hit], object]) -> None:
        """Call ``fn(hit)`` when an action of ``kind`` ('disconnect', 'preempt', 'wake') runs."""
        self._handlers.setdefault(kind, []).append(fn)
        self.undo.push(lambda: self._handlers[kind].remove(fn), f"remove {kind} handler")

    def run_handlers(self, kind: str, hit: Hit | None) -> int:
        handlers = list(self._handlers.get(kind, ()))
        for fn in handlers:
            fn(hit)  # type: ignore[arg-type]
        return len(handlers)

    def wrap_body(self, wrapper: Callable[[Callable[[], object]], object]) -> None:
        """Run the test function through ``wrapper(call)`` (the scheduler re-runs it)."""
        self._body_wrappers.append(wrapper)

    def run_body(self, call: Callable[[], object]) -> object:
        """Call the test body through every registered body wrapper, innermost first."""
        __tracebackhide__ = True
        for wrapper in self._body_wrappers:
            call = _bind_wrapper(wrapper, call)
        return call()

    @property
    def wraps_body(self) -> bool:
        return bool(self._body_wrappers)

    def service(self, key: str, factory: Callable[[Faultline], Any]) -> Any:
        """The test's single instance of a feature (proxy pool, clock, ...), made on first use."""
        self._check_open()
        svc = self._services.get(key)
        if svc is None:
            svc = self._services[key] = factory(self)
        return svc

    # -- scenarios ------------------------------------------------------------------------------

    def apply(self, name: str, /, **params: Any) -> None:
        """Apply scenario ``name`` with ``params`` now, as the marker does before the test."""
        self.apply_many([(name, params, "in faultline.apply()")])

    def apply_many(self, requests: list[tuple[str, dict[str, Any], str]]) -> None:
        """Check every (name, params, where) first, then apply them in order."""
        __tracebackhide__ = True
        self._check_open()
        bound = []
        for name, params, where in requests:
            sc = REGISTRY.get(name)
            bound.append((sc, sc.bind(self._with_setting_defaults(sc.params, params), where=where)))
        for sc, values in bound:
            self.scenarios.append((sc.name, values))
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            self.record("scenario", sc.name, shown)
            result = sc.func(self, **values)
            if inspect.isgenerator(result):
                self._start_generator(sc.name, result)

    def _with_setting_defaults(self, params: Any, given: dict[str, Any]) -> dict[str, Any]:
        # Marker > CLI > env > ini: a setting fills a scenario parameter the marker left out.
        merged = dict(given)
        for param in params:
            value = getattr(self.settings, f"param_{param.name}", None)
            if param.name not in merged and value is not None:
                merged[param.name] = value
        return merged

    def _start_generator(self, name: str, gen: Iterator[Any]) -> None:
        try:
            next(gen)
        except StopIteration:
            return

        def finish() -> None:
            try:
                next(gen)
            except StopIteration:
                return
            raise FaultlineError(f"scenario {name!r} yielded more than once")

        self.undo.push(finish, f"finish scenario {name}")

    # -- features built in other subpackages ----------------------------------------------------

    def proxy(self, upstream: tuple[str, int] | str, *, name: str | None = None) -> Any:
        """A fault proxy in front of ``upstream`` (backend chosen by the options)."""
        from .net import make_proxy

        return make_proxy(self, upstream, name=name)

    @property
    def sockets(self) -> Any:
        """Socket-level faults for this test: short reads, stalls, closes and resets."""
        from .net import socket_faults

        return self.service("sockets", socket_faults)

    @property
    def clock(self) -> Any:
        """The test's controllable clock (freezegun underneath)."""
        from .cleanup import make_clock

        return self.service("clock", make_clock)

    def defer(
        self, target: str | Callable[..., Any], *, until: Any = None, seconds: float | None = None
    ) -> Any:
        """Hold calls to ``target``; run them after ``until``, ``seconds``, or at test end."""
        from .cleanup import make_deferral

        return make_deferral(self, target, until=until, seconds=seconds)

    def explore(self, fn: Callable[[], object], **options: Any) -> Any:
        """Run ``fn`` under many controlled thread interleavings (see ``thread_preemption``)."""
        from .sched import explore

        return explore(self, fn, **options)

    def replay(self, fn: Callable[[], object], token: str, **options: Any) -> Any:
        """Run ``fn`` under the one schedule recorded in ``token``."""
        from .sched import replay

        return replay(self, fn, token, **options)

    def confine(self, obj: Any, *, allow: Any = None) -> Any:
        """Confine ``obj`` to the current thread: use from another thread raises, except from
        the threads (or thread names) in ``allow``."""
        from .lockorder import confine

        return confine(self, obj, allow)

    def transfer(self, obj: Any, thread: Any) -> None:
        """Hand a confined object over to ``thread``."""
        from .lockorder import transfer

        transfer(self, obj, thread)

    @property
    def lock_order(self) -> Any:
        """The lock-order graph of this test: ``.edges`` and ``.inversions``."""
        from .lockorder import lock_order

        return self.service("lock_order", lock_order)

    # -- teardown -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise FaultlineError("this faultline controller is closed: its test has ended")

    def close(self) -> None:
        """Wake stalled threads, undo every patch in reverse order, then report unreached
        targets. Runs to the end even when a step fails or the user interrupts."""
        if self.closed:
            return
        self.closed = True
        errors: list[tuple[str, BaseException]] = []
        try:
            for arming in self.armings():
                arming.release()
            self.run_handlers("wake", None)
        except BaseException as exc:
            errors.append(("wake stalled threads", exc))
        finally:
            errors.extend(self.undo.unwind())
        for _, failure in errors:
            if not isinstance(failure, Exception):
                raise failure
        if errors:
            label, first = errors[0]
            more = "".join(f"\n  also: {lbl}: {exc!r}" for lbl, exc in errors[1:])
            raise FaultlineError(
                f"faultline teardown failed at {label}: {first!r}{more}"
            ) from first
        self._report_unreached()

    def unreached(self) -> list[str]:
        """Targets armed in this test that were never reached."""
        return sorted(t for t in self._armings if not self._arrivals.get(t))

    def _report_unreached(self) -> None:
        strict = [t for t in self.unreached() if any(a.strict for a in self._armings[t])]
        loose = [t for t in self.unreached() if t not in strict]
        for target in loose:
            warnings.warn(
                UnreachedPointWarning(
                    f"faultline: {target!r} was armed but never reached in "
                    f"{self.nodeid or 'this test'}; check the name (a typo arms nothing) or "
                    f"that the code path runs"
                ),
                stacklevel=2,
            )
        if strict:
            raise FaultlineError(
                f"faultline: armed but never reached (strict): "
                f"{', '.join(repr(t) for t in strict)}; check the names or that the code paths run"
            )


def _bind_wrapper(
    wrapper: Callable[[Callable[[], object]], object], call: Callable[[], object]
) -> Callable[[], object]:
    def bound() -> object:
        __tracebackhide__ = True
        return wrapper(call)

    return bound
