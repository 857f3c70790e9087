"""The incident's torture script, as threads: many short-lived clients starting, listing the
client tree and stopping (some crash instead), while the watchdog and the alarm check run.

Every thread's waits are bounded (the system's lock timeout), so every thread ends: a deadlock
shows up as :class:`~midas_cm_msg.core.LockTimeout` errors, and a thread still running at the
deadline is reported by name with the lock holders, never waited for without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .core import WATCHDOG_PERIOD_S, BaseMidas, Watchdog

DEADLINE_S = 15.0
LATE_JOIN_S = 10.0
ALARM_PERIOD_S = 0.005
ALARM_PROGRAMS = 10  # programs with an alarm: al_check() asks cm_exist() about each


@dataclass
class TortureResult:
    """What happened: the errors each thread met, and any thread that outlived the deadline."""

    started: int = 0
    stopped: int = 0
    crashed: int = 0
    alarm_checks: int = 0
    errors: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def describe(self, midas: BaseMidas) -> str:
        lines = [
            f"{self.started} started, {self.stopped} stopped, {self.crashed} crashed, "
            f"{self.alarm_checks} alarm checks in {self.elapsed:.2f} s"
        ]
        # The threads of a deadlock wait while holding a lock; list them before their queues.
        errors = sorted(self.errors, key=lambda e: "while holding" not in e)
        lines += [f"  error: {e}" for e in errors[:10]]
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more errors")
        if self.still_running:
            lines.append(
                f"  threads still running at the deadline (deadlocked?): {self.still_running}; "
                f"ODB held by {midas.odb.holder!r}, SYSMSG held by {midas.sysmsg.holder!r}"
            )
        return "\n".join(lines)


def torture(
    midas: BaseMidas,
    programs: Sequence[tuple[str, str]],
    *,
    crashes: Callable[[int], bool] = lambda i: False,
    deadline: float = DEADLINE_S,
    watchdog_period: float = WATCHDOG_PERIOD_S,
    alarm_period: float = ALARM_PERIOD_S,
) -> TortureResult:
    """Start one thread per ``(name, host)`` in ``programs``, all at once: each connects, looks
    for another program with ``cm_exist()``, then disconnects (or, if ``crashes(i)``, dies and
    leaves its entry to the watchdog). Meanwhile the watchdog runs, and an alarm-check thread asks
    ``cm_exist()`` about the first programs every ``alarm_period`` seconds. The first error stops
    the run early. Threads still running at ``deadline`` are reported in ``still_running``, then
    joined for up to ``LATE_JOIN_S`` more (they end: each of their waits is bounded)."""
    result = TortureResult()
    record_lock = threading.Lock()
    abort = threading.Event()
    clients_done = threading.Event()
    names = [name for name, _ in programs]
    watchdog = Watchdog(midas, watchdog_period)

    def fail(where: str, exc: BaseException) -> None:
        with record_lock:
            result.errors.append(f"{where}: {type(exc).__name__}: {exc}")
        abort.set()

    def client(i: int, name: str, host: str) -> None:
        try:
            if abort.is_set():
                return
            me = midas.cm_connect_experiment(name, host)
            with record_lock:
                result.started += 1
            midas.cm_exist(names[(i + 1) % len(names)])  # odbedit -c 'ls -l /system/clients'
            if crashes(i):
                midas.crash(me)
                with record_lock:
                    result.crashed += 1
            else:
                midas.cm_disconnect_experiment(me)
                with record_lock:
                    result.stopped += 1
        except Exception as exc:
            fail(threading.current_thread().name, exc)

    def alarm_check() -> None:  # al_check(): cm_exist() for every program, over and over
        try:
            while not abort.is_set():
                for name in names[:ALARM_PROGRAMS]:
                    midas.cm_exist(name)
                result.alarm_checks += 1
                if clients_done.wait(alarm_period):
                    return
        except Exception as exc:
            fail("al_check", exc)

    started_at = time.monotonic()
    end = started_at + deadline
    checker = threading.Thread(target=alarm_check, name="al_check", daemon=True)
    threads = [
        threading.Thread(target=client, args=(i, name, host), name=f"client {name}", daemon=True)
        for i, (name, host) in enumerate(programs)
    ]
    watchdog.start()
    checker.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    clients_done.set()
    checker.join(max(0.0, end - time.monotonic()))
    watchdog.stop(max(0.0, end - time.monotonic()))
    everyone = [*threads, checker, watchdog.thread]
    result.still_running = [t.name for t in everyone if t.is_alive()]
    late_end = time.monotonic() + LATE_JOIN_S
    for thread in everyone:  # they end: each of their waits is bounded by the lock timeout
        thread.join(max(0.0, late_end - time.monotonic()))
    if not result.still_running:
        try:
            midas.cm_watchdog()  # a last pass: the crashed clients' entries go now
            midas.cm_exit()
        except Exception as exc:
            fail("final cleanup", exc)
    result.errors += watchdog.errors
    result.elapsed = time.monotonic() - started_at
    return result
