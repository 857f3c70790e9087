"""What the buggy and the fixed implementations share: the online database (ODB), the system
message buffer (SYSMSG), client start-up and the watchdog.

The two locks are the incident's two semaphores. ``Odb._odb_lock`` is recursive: ODB functions
call each other with the lock held. ``SysMsg._sysmsg_lock`` is not. Every wait for either is
bounded, as MIDAS's ``ss_semaphore_wait_for()`` is: a deadlock ends in :class:`LockTimeout`
naming who holds what, not in a hang. ``lock_timeout=None`` waits forever (under the thread
scheduler, which reports a deadlock itself).

The implementations differ in ``cm_msg()``, ``cm_disconnect_experiment()`` and ``cm_exist()``.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from pytest_faultline import point

LOCK_TIMEOUT_S = 1.0
WATCHDOG_PERIOD_S = 0.002
CLIENTS = "/System/Clients"
MESSAGES = "/System/Messages"

_held = threading.local()  # per thread: labels of the semaphores it holds, in the order taken


def _holding() -> list[str]:
    names: list[str] | None = getattr(_held, "names", None)
    if names is None:
        names = _held.names = []
    return names


class MidasError(Exception):
    """An error MIDAS would report with a status code."""


class LockTimeout(MidasError):
    """A semaphore was not obtained in time: with two threads each holding what the other wants,
    a deadlock."""


class InvalidKeyError(MidasError):
    """A key handle was used after its key was deleted (MIDAS: invalid key TID)."""


@dataclass(frozen=True)
class Message:
    """One system message, as ``cm_msg()`` formats it."""

    type: str
    routine: str
    text: str

    def __str__(self) -> str:
        return f"[{self.routine},{self.type}] {self.text}"


class Semaphore:
    """What the ODB and SYSMSG locks share: a bounded wait, the holder's thread name for error
    messages, and the calling thread's nesting depth (``held_by_me()``).

    Subclasses create their lock in ``__init__`` (``self._odb_lock = threading.RLock()``) so
    that lock-order reports name it after the attribute.
    """

    label = "?"

    def __init__(self, lock: Any, timeout: float | None, *, recursive: bool) -> None:
        self._lock = lock
        self.timeout = timeout
        self.recursive = recursive
        self.holder: str | None = None
        self._depth = threading.local()

    def held_by_me(self) -> bool:
        """Whether the calling thread holds this lock."""
        return getattr(self._depth, "n", 0) > 0

    def acquire(self) -> None:
        """Take the lock; raise :class:`LockTimeout` after ``timeout`` seconds."""
        me = threading.current_thread().name
        held = _holding()
        if not self.recursive and self.held_by_me():
            raise MidasError(f"{me}: the {self.label} lock is not recursive and is already held")
        if not self._lock.acquire(timeout=-1 if self.timeout is None else self.timeout):
            also = f" while holding {' and '.join(held)}" if held else ""
            raise LockTimeout(
                f"{me}: timeout after {self.timeout:g} s waiting for the {self.label} lock held "
                f"by {self.holder!r}{also} (a deadlock, or a holder stalled that long)"
            )
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        if depth == 0:
            self.holder = me
            held.append(self.label)
            try:
                # A fault point with the lock newly held: where a page fault or a preempted
                # process would stall the real holder, widening every race window from here.
                point(f"{self.label.lower()}.locked")
            except BaseException:  # an injected fault: the caller never got the lock
                self._depth.n, self.holder = 0, None
                held.remove(self.label)
                self._lock.release()
                raise

    def release(self) -> None:
        """Release the lock; when the outermost hold ends, call :meth:`released`."""
        depth = self._depth.n - 1
        self._depth.n = depth
        if depth == 0:
            self.holder = None
            _holding().remove(self.label)
        self._lock.release()
        if depth == 0:
            self.released()

    def released(self) -> None:
        """Called after the calling thread's outermost hold ended."""

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Key:
    """A key handle (MIDAS's HNDLE). It refers to one entry; once the entry is deleted, using
    the handle is an error."""

    __slots__ = ("children", "deleted", "name", "parent", "value")

    def __init__(self, name: str, parent: Key | None, value: object = None) -> None:
        self.name = name
        self.parent = parent
        self.value = value
        self.children: dict[str, Key] = {}
        self.deleted = False

    @property
    def path(self) -> str:
        if self.parent is None:
            return ""
        return f"{self.parent.path}/{self.name}"

    def __repr__(self) -> str:
        return f"Key({self.path or '/'!r}{', deleted' if self.deleted else ''})"


def _no_report(type: str, routine: str, text: str) -> None:
    pass


class Odb(Semaphore):
    """The online database: a key tree behind one recursive lock.

    Every ``db_*`` function takes the lock itself; hold it (``with odb:``) to make several calls
    one atomic step. Problems are reported through ``report`` (``cm_msg``) with the lock held,
    as MIDAS's ODB functions do.
    """

    label = "ODB"

    def __init__(self, lock_timeout: float | None = LOCK_TIMEOUT_S) -> None:
        self._odb_lock = threading.RLock()
        super().__init__(self._odb_lock, lock_timeout, recursive=True)
        self.root = Key("", None)
        self.report = _no_report
        self.on_unlock: list[Any] = []  # callables run after the outermost release
        self.invalid_handles: list[str] = []

    def released(self) -> None:
        for hook in self.on_unlock:
            hook()

    def db_find_key(self, path: str) -> Key | None:
        """The key at ``path``, or None."""
        with self:
            key = self.root
            for part in filter(None, path.split("/")):
                found = key.children.get(part)
                if found is None:
                    return None
                key = found
            return key

    def db_set_value(self, path: str, value: object) -> Key:
        """Set ``path`` to ``value``, creating it and its parents if missing."""
        with self:
            key = self.root
            for part in filter(None, path.split("/")):
                key = key.children.get(part) or key.children.setdefault(part, Key(part, key))
            key.value = value
            return key

    def db_enum_key(self, key: Key, index: int) -> Key | None:
        """The ``index``-th subkey of ``key`` (a handle that outlives the lock), or None."""
        with self:
            self._check(key, "db_enum_key", "")
            children = list(key.children.values())
            return children[index] if index < len(children) else None

    def db_get_value(
        self, key: Key, name: str, default: object = None, create: bool = False
    ) -> Any:
        """The value of ``key``'s subkey ``name``; with ``create``, made with ``default`` if
        missing (MIDAS's create-if-not-found, which writes through the handle)."""
        with self:
            self._check(key, "db_get_value", name)
            child = key.children.get(name)
            if child is None:
                if not create:
                    return default
                child = key.children[name] = Key(name, key, default)
            return child.value

    def db_delete_key(self, key: Key) -> None:
        """Delete ``key`` and everything below it; its handles become invalid."""
        with self:
            self._check(key, "db_delete_key", "")
            assert key.parent is not None, "the root key cannot be deleted"
            del key.parent.children[key.name]
            stack = [key]
            while stack:
                gone = stack.pop()
                gone.deleted = True
                stack.extend(gone.children.values())

    def _check(self, key: Key, routine: str, name: str) -> None:
        if not key.deleted:
            return
        # What MIDAS printed when cm_exist() read a client that had just been removed; the
        # handle may even be written through (create-if-not-found), so refuse it.
        text = f'"{name}" is of type NULL, not STRING' if name else "invalid key handle"
        self.invalid_handles.append(f"{routine}: {key.path}")
        self.report("ERROR", routine, f"{text} (key {key.path} was deleted)")
        raise InvalidKeyError(f"{routine}: {text}: the key {key.path} was deleted")

    def ls(self, path: str) -> dict[str, Any]:
        """A snapshot of ``path``: ``{name: value or nested dict}`` (for tests and tools)."""
        with self:
            key = self.db_find_key(path)
            return {} if key is None else _snapshot(key)


def _snapshot(key: Key) -> dict[str, Any]:
    return {
        name: _snapshot(child) if child.children else child.value
        for name, child in key.children.items()
    }


class SysMsg(Semaphore):
    """The system message buffer: the messages, and the clients attached to the buffer."""

    label = "SYSMSG"

    def __init__(self, lock_timeout: float | None = LOCK_TIMEOUT_S) -> None:
        self._sysmsg_lock = threading.Lock()
        super().__init__(self._sysmsg_lock, lock_timeout, recursive=False)
        self.messages: list[Message] = []
        self.clients: dict[int, str] = {}  # pid -> program name


@dataclass(frozen=True)
class Client:
    """A connected program (one MIDAS process)."""

    name: str
    pid: int
    host: str

    @property
    def key(self) -> str:
        return f"{CLIENTS}/{self.pid}"


class BaseMidas:
    """One experiment: the ODB, the SYSMSG buffer and the process table of its clients."""

    def __init__(self, *, lock_timeout: float | None = LOCK_TIMEOUT_S) -> None:
        self.odb = Odb(lock_timeout)
        self.sysmsg = SysMsg(lock_timeout)
        self.odb.report = self.cm_msg
        self.processes: set[int] = set()  # pids alive on the host (kill(pid, 0) succeeds)
        self._pids = itertools.count(1001)

    # -- what the implementations differ in ----------------------------------------------------

    def cm_msg(self, type: str, routine: str, text: str) -> None:
        """Send a system message: into the SYSMSG buffer, and the ODB's message log."""
        raise NotImplementedError

    def cm_disconnect_experiment(self, client: Client) -> None:
        """Stop a client: remove its ODB entry and detach it from SYSMSG."""
        raise NotImplementedError

    def cm_exist(self, name: str) -> bool:
        """Whether a client called ``name`` is connected (the alarm check asks, per program)."""
        raise NotImplementedError

    def cm_exit(self) -> None:
        """The process exits: anything still buffered is sent."""

    # -- shared --------------------------------------------------------------------------------

    def post_locked(self, msg: Message) -> None:
        """Append ``msg`` to SYSMSG (held by the caller) and log it in the ODB: SYSMSG -> ODB."""
        assert self.sysmsg.held_by_me(), "post_locked() needs the SYSMSG lock"
        self.sysmsg.messages.append(msg)
        with self.odb:
            count = self.odb.db_find_key(f"{MESSAGES}/Count")
            seen = count.value if count is not None and isinstance(count.value, int) else 0
            self.odb.db_set_value(f"{MESSAGES}/Count", seen + 1)
            self.odb.db_set_value(f"{MESSAGES}/Last", str(msg))

    def cm_connect_experiment(self, name: str, host: str = "localhost") -> Client:
        """Start a client: attach it to SYSMSG, register it under /System/Clients/<pid>, and
        announce it."""
        client = Client(name, next(self._pids), host)
        self.processes.add(client.pid)
        with self.sysmsg:  # bm_open_buffer("SYSMSG")
            self.sysmsg.clients[client.pid] = name
        with self.odb:
            self.odb.db_set_value(f"{client.key}/Name", name)
            self.odb.db_set_value(f"{client.key}/Host", host)
        self.cm_msg("INFO", "cm_connect_experiment", f"Program {name} on host {host} started")
        return client

    def crash(self, client: Client) -> None:
        """The client's process dies without disconnecting; the watchdog must clean up."""
        self.processes.discard(client.pid)

    def cm_watchdog(self) -> list[int]:
        """One pass of the watchdog: remove clients whose process is gone, from SYSMSG and then
        from the ODB (SYSMSG -> ODB), and report each. Returns the removed pids."""
        removed: dict[int, str] = {}
        verdicts: dict[int, bool] = {}

        def dead(pid: int) -> bool:
            # Asked once per pass: a process dying mid-pass must not be removed from the ODB
            # by this pass and from SYSMSG by the next (and reported twice).
            return verdicts.setdefault(pid, pid not in self.processes)

        with self.sysmsg:  # bm_cleanup: the SYSMSG buffer's table of clients
            for pid in [p for p in self.sysmsg.clients if dead(p)]:
                removed[pid] = self.sysmsg.clients.pop(pid)
            with self.odb:  # cm_delete_client_info for each dead client
                clients = self.odb.db_find_key(CLIENTS)
                for key in list(clients.children.values()) if clients else []:
                    pid = int(key.name)
                    if dead(pid):
                        removed.setdefault(pid, str(self.odb.db_get_value(key, "Name", "?")))
                        self.odb.db_delete_key(key)
            for pid, name in sorted(removed.items()):
                text = f"Client '{name}' (pid {pid}) removed by cm_watchdog: process does not exist"
                self.post_locked(Message("INFO", "cm_watchdog", text))
        return sorted(removed)

    def clients(self) -> dict[int, str]:
        """``{pid: name}`` of every client registered in the ODB."""
        return {int(pid): entry.get("Name") for pid, entry in self.odb.ls(CLIENTS).items()}

    def check_tree(self) -> list[str]:
        """What is wrong with the client tree and the buffer (empty when consistent): entries
        of dead processes, entries missing their name, clients in only one of the two."""
        problems = []
        with self.sysmsg, self.odb:
            registered = self.odb.ls(CLIENTS)
            for key, entry in registered.items():
                if not isinstance(entry, dict) or set(entry) != {"Name", "Host"}:
                    problems.append(f"{CLIENTS}/{key} is malformed: {entry!r}")
                if int(key) not in self.processes:
                    problems.append(f"{CLIENTS}/{key} belongs to a dead process")
            in_odb = {int(key) for key in registered}
            for pid in set(self.sysmsg.clients) ^ in_odb:
                where = "SYSMSG" if pid in self.sysmsg.clients else "the ODB"
                problems.append(f"pid {pid} is registered in {where} only")
        return problems


class Watchdog:
    """Runs ``cm_watchdog()`` every ``period`` seconds in its own thread (MIDAS runs it from a
    timer in every client). Errors are collected in ``errors``; ``stop()`` is bounded."""

    def __init__(self, midas: BaseMidas, period: float = WATCHDOG_PERIOD_S) -> None:
        self.midas = midas
        self.period = period
        self.passes = 0
        self.errors: list[str] = []
        self.first_pass = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cm_watchdog", daemon=True)

    def start(self) -> Watchdog:
        self.thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.midas.cm_watchdog()
            except Exception as exc:  # reported, as MIDAS logs a failed watchdog pass
                self.errors.append(f"cm_watchdog: {type(exc).__name__}: {exc}")
            self.passes += 1
            self.first_pass.set()
            if self._stop.wait(self.period):
                return

    def stop(self, timeout: float) -> bool:
        """Stop and join within ``timeout`` seconds; False if the thread is still running."""
        self._stop.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()
