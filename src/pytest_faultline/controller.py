"""The per-test controller behind the ``faultline`` fixture.

It owns the test's decider (seed and token), its fault events, its armings, and one undo stack
that every patch of every feature is pushed on and that is unwound in reverse order, always.
"""

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from . import _points, _raw
from ._context import (
    BodyWrapper,
    EventKind,
    FaultContext,
    FaultEvent,
    HandlerKind,
    ServiceKey,
    UndoStack,
)
from .actions import PROCEED, Disconnect, Hit, as_action
from .arming import Arming
from .decider import Decider, ReplayToken, Stream, derive_seed
from .errors import FaultlineError, ScenarioError, TargetError, UnreachedPointWarning
from .settings import Settings
from .targets import CallTarget, is_call_target, path_of, resolve

if TYPE_CHECKING:
    from faker import Faker

    from .cleanup import Clock, Deferral
    from .lockorder import LockOrder
    from .net import Proxy, SocketFaults
    from .sched import Exploration
    from .sweep import Sweep

__all__ = ["Arming", "FaultEvent", "Faultline", "UndoStack"]

T = TypeVar("T")


class Faultline(FaultContext):
    """The ``faultline`` fixture: one controller per test. See the fixture's docs.

    It implements :class:`~pytest_faultline._context.FaultContext` for the subsystems and is the
    typed facade of every feature."""

    def __init__(
        self,
        *,
        seed: int,
        nodeid: str = "",
        token: ReplayToken | None = None,
        settings: Settings | None = None,
    ) -> None:
        from .decider import test_fingerprint

        self._nodeid = nodeid
        self._decider = Decider(seed, test=test_fingerprint(nodeid), token=token)
        self._settings = settings if settings is not None else Settings(seed, "given")
        self.events: list[FaultEvent] = []
        self.scenarios: list[tuple[str, dict[str, Any]]] = []
        self._undo = UndoStack()
        self.closed = False
        self.usage_error = False
        self._t0 = _raw.monotonic()
        self._events_lock = _raw.allocate_lock()
        self._armings: dict[str, list[Arming]] = {}
        self._arrivals: dict[str, int] = {}
        self._handlers: dict[str, list[Callable[[Hit | None], object]]] = {}
        self._body_wrappers: list[BodyWrapper] = []
        self._services: dict[ServiceKey[Any], Any] = {}
        self._random: random.Random | None = None
        self._fake: Faker | None = None
        self._examples = 0
        self.attempt = 1  # which run of the test this is (reruns: 2, 3, ...)
        self.body_started = False  # set by the plugin when the test function is called

    # -- the context protocol -------------------------------------------------------------------

    @property
    def nodeid(self) -> str:
        """The test's node id."""
        return self._nodeid

    @property
    def settings(self) -> Settings:
        """The session's resolved options."""
        return self._settings

    @property
    def undo(self) -> UndoStack:
        """The test's undo stack: every patch, unwound in reverse order at teardown."""
        return self._undo

    @property
    def decider(self) -> Decider:
        """The decider in force: the test's, or an explored run's inside ``use_decider``."""
        return self._decider

    def stream(self, source: str, *, recorded: bool = False) -> Stream:
        return self._decider.stream(source, recorded=recorded)

    @contextmanager
    def use_decider(self, decider: Decider) -> Iterator[Decider]:
        previous = self._decider
        self._decider = decider
        try:
            yield decider
        finally:
            self._decider = previous

    def adopt_decider(self, decider: Decider) -> None:
        self._decider = decider

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

    def record(self, kind: EventKind, name: str, detail: str = "") -> FaultEvent:
        """Append a :class:`FaultEvent` (features and scenarios call this for every injection)."""
        event = FaultEvent(
            kind if isinstance(kind, EventKind) else EventKind.of(kind),
            name,
            _raw.current_thread().name,
            detail,
            _raw.monotonic() - self._t0,
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
            strict = self._settings.strict
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
            if inspect.iscoroutinefunction(original):
                return self._async_wrapper(path, original)

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True
                result = self._dispatch(path, args, kwargs)
                if result is not PROCEED:
                    return result
                return original(*args, **kwargs)

            return wrapper

        call_target.install(make_wrapper)
        self.undo.push(call_target.restore, f"restore {path}")

    def _async_wrapper(self, path: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """An armed coroutine function: the actions happen when it is awaited, inside it."""

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            with self._events_lock:
                self._arrivals[path] = self._arrivals.get(path, 0) + 1
            for arming in list(self._armings.get(path, ())):
                result = await arming.arrive_async(args, kwargs)
                if result is not PROCEED:
                    return result
            return await original(*args, **kwargs)

        return wrapper

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

    def add_handler(self, kind: HandlerKind, fn: Callable[[Hit | None], object]) -> None:
        """Call ``fn(hit)`` when an action of ``kind`` ('disconnect', 'preempt', 'wake') runs."""
        self._handlers.setdefault(kind, []).append(fn)
        self.undo.push(lambda: self._handlers[kind].remove(fn), f"remove {kind} handler")

    def run_handlers(self, kind: HandlerKind, hit: Hit | None) -> int:
        handlers = list(self._handlers.get(kind, ()))
        for fn in handlers:
            fn(hit)
        return len(handlers)

    def wrap_body(self, wrapper: BodyWrapper) -> None:
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

    def service(self, key: ServiceKey[T], factory: Callable[[FaultContext], T]) -> T:
        """The test's single instance of a feature (proxy pool, clock, ...), made on first use."""
        self._check_open()
        if key in self._services:
            svc: T = self._services[key]
            return svc
        made = self._services[key] = factory(self)
        return made

    def peek(self, key: ServiceKey[T]) -> T | None:
        """The service behind ``key`` if the test made it already."""
        found: T | None = self._services.get(key)
        return found

    # -- scenarios ------------------------------------------------------------------------------

    def apply(self, name: str, /, **params: Any) -> None:
        """Apply scenario ``name`` with ``params`` now, as the marker does before the test."""
        self.apply_many([(name, params, "in faultline.apply()")])

    def apply_many(self, requests: list[tuple[str, dict[str, Any], str]]) -> None:
        """Check every (name, params, where) first, then apply them in order."""
        __tracebackhide__ = True
        self._check_open()
        from .registry import REGISTRY  # not before: explore() outside pytest needs none

        bound = []
        for name, params, where in requests:
            sc = REGISTRY.get(name)
            bound.append((sc, sc.bind(self._with_setting_defaults(sc.params, params), where=where)))
        for (sc, values), (_, _, where) in zip(bound, requests, strict=True):
            self.scenarios.append((sc.name, values))
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            self.record(EventKind.SCENARIO, sc.name, shown)
            try:
                result = sc.func(self, **values)
            except TargetError:
                raise
            except ScenarioError as exc:
                # One format for every refusal: the scenario, what is wrong, where it came from.
                message = str(exc)
                prefix = f"{sc.name}: "
                if message.startswith(prefix):
                    message = message[len(prefix) :]
                if not message.startswith("faultline scenario"):
                    message = f"faultline scenario {sc.name!r}: {message}"
                if where not in message:
                    message = f"{message} ({where})"
                raise ScenarioError(message) from None
            except FaultlineError as exc:
                # A value the scenario refused is a usage error of the marker, whichever
                # scenario (built-in or the user's) found it: one format, no traceback.
                raise ScenarioError(f"faultline scenario {sc.name!r}: {exc} ({where})") from None
            if inspect.isgenerator(result):
                self._start_generator(sc.name, result)

    def _with_setting_defaults(self, params: Any, given: dict[str, Any]) -> dict[str, Any]:
        # Marker > CLI > env > ini: a setting fills a scenario parameter the marker left out.
        defaults = self._settings.param_defaults()
        merged = dict(given)
        for param in params:
            if param.name not in merged and param.name in defaults:
                merged[param.name] = defaults[param.name]
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

    # -- examples (Hypothesis) -----------------------------------------------------------------

    @contextmanager
    def example(self, key: str) -> Iterator[Decider]:
        """Run one example of a test as if it were a test of its own.

        Inside the block every draw comes from a seed derived from the test's seed and ``key``
        (the same ``key`` gives the same faults, so a failing example replays), ``random`` and
        ``fake`` start afresh, and the events are headed by an ``example`` event. Armings,
        patches and services made inside the block are undone at its end; what the test set up
        before it stays. The plugin wraps each Hypothesis example in this block.
        """
        self._check_open()
        self._examples += 1
        base, saved_random, saved_fake = self._decider, self._random, self._fake
        decider = Decider(derive_seed(base.seed, "example", key), test=base.test, token=None)
        depth = len(self._undo)
        armings = {t: list(a) for t, a in self._armings.items()}
        arrivals = dict(self._arrivals)
        handlers = {k: list(v) for k, v in self._handlers.items()}
        services = dict(self._services)
        wrappers = list(self._body_wrappers)
        self.record(EventKind.EXAMPLE, f"#{self._examples}", f"seed={decider.seed} {_shorten(key)}")
        self._decider, self._random, self._fake = decider, None, None
        try:
            yield decider
        finally:
            errors: list[tuple[str, BaseException]] = []
            try:
                for arming in self.armings():
                    if arming not in armings.get(arming.target, ()):
                        arming.release()
            finally:
                errors = self._undo.unwind_to(depth)
                self._decider, self._random, self._fake = base, saved_random, saved_fake
                self._armings, self._arrivals = armings, arrivals
                self._handlers, self._services = handlers, services
                self._body_wrappers = wrappers
            if errors:
                label, first = errors[0]
                raise FaultlineError(
                    f"faultline: undoing example #{self._examples} failed at {label}: {first!r}"
                ) from first

    # -- features built in other subpackages ----------------------------------------------------

    def proxy(self, upstream: tuple[str, int] | str, *, name: str | None = None) -> Proxy:
        """A fault proxy in front of ``upstream`` (backend chosen by the options)."""
        from .net import make_proxy

        return make_proxy(self, upstream, name=name)

    @property
    def sockets(self) -> SocketFaults:
        """Socket-level faults for this test: short reads, stalls, closes and resets."""
        from .net import SOCKETS, socket_faults

        return self.service(SOCKETS, socket_faults)

    @property
    def clock(self) -> Clock:
        """The test's controllable clock (freezegun underneath)."""
        from .cleanup import CLOCK, make_clock

        return self.service(CLOCK, make_clock)

    def defer(
        self,
        target: str | Callable[..., Any],
        *,
        until: str | Callable[..., Any] | None = None,
        seconds: float | None = None,
    ) -> Deferral:
        """Hold calls to ``target``; run them after ``until``, ``seconds``, or at test end."""
        from .cleanup import make_deferral

        return make_deferral(self, target, until=until, seconds=seconds)

    def explore(self, fn: Callable[[], object], **options: Any) -> Exploration:
        """Run ``fn`` under many controlled thread interleavings (see ``thread_preemption``);
        a coroutine function under many asyncio task orders (see ``task_interleaving``)."""
        if inspect.iscoroutinefunction(fn):
            from . import aio

            return aio.explore(self, fn, **options)
        from .sched import explore

        return explore(self, fn, **options)

    def replay(self, fn: Callable[[], object], token: str, **options: Any) -> Exploration:
        """Run ``fn`` (a function or a coroutine function) under the one schedule recorded in
        ``token``."""
        if inspect.iscoroutinefunction(fn):
            from . import aio

            return aio.replay(self, fn, token, **options)
        from .sched import replay

        return replay(self, fn, token, **options)

    def sweep(
        self,
        fn: Callable[[], object],
        *,
        kinds: Sequence[str | type[BaseException]] | str | None = None,
        targets: list[str] | None = None,
        budget: float | None = None,
        max_runs: int | None = None,
        pairs: bool = False,
        verify: bool = True,
        raises: bool = True,
        progress: Callable[[str], object] | None = None,
    ) -> Sweep:
        """Run ``fn`` once to record its fault sites, then once per site and kind (see the
        ``fault_sweep`` scenario); raise the first failure with the report attached, or return
        the :class:`~pytest_faultline.sweep.Sweep` (``raises=False``)."""
        from .sweep.api import sweep

        return sweep(
            self,
            fn,
            raises=raises,
            progress=progress,
            kinds=kinds,
            targets=targets,
            budget=budget,
            max_runs=max_runs,
            pairs=pairs,
            verify=verify,
        )

    def confine(self, obj: T, *, allow: Any = None) -> T:
        """Confine ``obj`` to the current thread: use from another thread raises, except from
        the threads (or thread names) in ``allow``."""
        from .lockorder import confine

        return confine(self, obj, allow)  # type: ignore[no-any-return]

    def transfer(self, obj: object, thread: Any) -> None:
        """Hand a confined object over to ``thread``."""
        from .lockorder import transfer

        transfer(self, obj, thread)

    @property
    def lock_order(self) -> LockOrder:
        """The lock-order graph of this test: ``.edges`` and ``.inversions``."""
        from .lockorder import LOCK_ORDER, lock_order

        return self.service(LOCK_ORDER, lock_order)

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


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bind_wrapper(
    wrapper: Callable[[Callable[[], object]], object], call: Callable[[], object]
) -> Callable[[], object]:
    def bound() -> object:
        __tracebackhide__ = True
        return wrapper(call)

    return bound
