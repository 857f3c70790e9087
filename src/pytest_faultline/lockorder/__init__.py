"""Lock-order checking (lockdep for Python) and thread affinity.

The controller and the built-in scenarios call the functions here; the machinery is in
``watch`` (the lock-order watcher), ``graph`` (edges, cycles and reports), ``_tracked`` (the
tracked locks), ``affinity`` (confined objects) and ``session`` (``--faultline-lockdep``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .._context import EventKind, ServiceKey
from ..errors import LockOrderError, ScenarioError, ThreadAffinityError

if TYPE_CHECKING:
    from .._context import FaultContext
    from ._tracked import rechain
    from .affinity import Affinity
    from .graph import Edge, Inversion, TryLock
    from .watch import LockOrder

__all__ = [
    "LOCK_ORDER",
    "Affinity",
    "Edge",
    "Inversion",
    "LockOrder",
    "TryLock",
    "confine",
    "confine_types",
    "lock_order",
    "rechain",
    "transfer",
    "watch_lock_order",
]

AFFINITY_KEY: ServiceKey[Affinity] = ServiceKey("thread_affinity")
LOCK_ORDER: ServiceKey[LockOrder] = ServiceKey("lock_order")

# The machinery is imported when first used: the thread scheduler names its locks with
# ``lockorder._sites`` on every first run, and must not pay for the watcher then.
_LAZY = {
    "Affinity": "affinity",
    "Edge": "graph",
    "Inversion": "graph",
    "TryLock": "graph",
    "LockOrder": "watch",
    "rechain": "_tracked",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def lock_order(faultline: FaultContext) -> LockOrder:
    """Service factory behind ``faultline.lock_order``: a recording watcher for this test.

    Started on first use and stopped when the test ends. Without the ``lock_order`` scenario
    it only records (``fail=False``); locks made before it started are not tracked.
    """
    from ._verdict import verdict
    from .watch import LockOrder

    def on_inversion(inversion: Inversion) -> None:
        faultline.record(
            EventKind.LOCK_ORDER, "inversion", f"{inversion.summary} ({inversion.kind})"
        )
        if watcher.fail:
            verdict(faultline).add(
                inversion.thread_ident, inversion.thread, LockOrderError, inversion.report()
            )

    watcher = LockOrder(context=faultline.nodeid, on_inversion=on_inversion)
    watcher.start()
    faultline.undo.push(watcher.stop, "restore threading.Lock and threading.RLock")
    return watcher


def watch_lock_order(faultline: FaultContext, *, fail: bool) -> None:
    """The ``lock_order`` scenario: watch from now on; ``fail`` raises where a cycle closes."""
    from ._verdict import verdict

    if fail:
        verdict(faultline).wrap_body()  # before the watcher, so its check is undone after it
    watcher = faultline.service(LOCK_ORDER, lock_order)
    watcher.fail = fail


def _affinity(faultline: FaultContext) -> Affinity:
    from ._verdict import verdict
    from .affinity import Affinity

    def on_violation(error: ThreadAffinityError) -> None:
        me = threading.current_thread()
        faultline.record(
            EventKind.AFFINITY_VIOLATION, "violation", str(error).split(". It was", 1)[0]
        )
        verdict(faultline).add(me.ident or 0, me.name, ThreadAffinityError, str(error))

    verdict(faultline)
    affinity = Affinity(on_violation)
    faultline.undo.push(affinity.close, "unconfine objects and unwrap constructors")
    return affinity


def confine(faultline: FaultContext, obj: Any, allow: Any = None) -> Any:
    """``faultline.confine(obj, allow=None)``: confine ``obj`` to the calling thread.

    ``allow`` lists other threads (or thread names) that may use it too. Returns ``obj`` itself
    (its class is swapped for a guarding subclass until the test ends) or, for built-in types,
    a guarding proxy to use instead.
    """
    from .affinity import check_allow

    affinity: Affinity = faultline.service(AFFINITY_KEY, _affinity)
    confined = affinity.confine(obj, depth=2, allow=check_allow(allow))
    faultline.record(
        EventKind.CONFINE,
        type(obj).__qualname__,
        f"confined to {threading.current_thread().name!r}",
    )
    return confined


def transfer(faultline: FaultContext, obj: Any, thread: Any) -> None:
    """``faultline.transfer(obj, thread)``: make ``thread`` the owner of confined ``obj``."""
    affinity: Affinity = faultline.service(AFFINITY_KEY, _affinity)
    affinity.transfer(obj, thread)
    faultline.record(EventKind.CONFINE, type(obj).__qualname__, f"transferred to {thread.name!r}")


def confine_types(
    faultline: FaultContext, types: list[str], allow: list[str] | None = None
) -> None:
    """The ``thread_affinity`` scenario: instances of ``types`` made during the test are
    confined to the thread that made them."""
    if isinstance(types, str) or not types:
        raise ScenarioError(
            f"thread_affinity: types must be a non-empty list of import paths such as "
            f"['myapp.server:Server'], got {types!r}"
        )
    from ._verdict import verdict
    from .affinity import check_allow, resolve_type

    allowed = check_allow(allow)
    classes = [resolve_type(path) for path in types]
    verdict(faultline).wrap_body()
    affinity: Affinity = faultline.service(AFFINITY_KEY, _affinity)
    for cls in classes:
        affinity.confine_new_instances(cls, allowed)
    names = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in classes)
    faultline.record(EventKind.CONFINE, "types", f"confining new instances of {names}")
