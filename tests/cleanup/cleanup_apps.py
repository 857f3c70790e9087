"""Small systems under test for the cleanup and clock tests, modelled on incident 000 (xproofd).

* ``NaiveRegistry`` frees a connection's slot at once and leaves the removal of the references to
  that slot to a worker thread fed by a queue (the asynchronous cleanup of the incident).
  ``FixedRegistry`` removes the references synchronously, before the slot is freed.
* ``Server`` disconnects clients whose last heartbeat is too old, from a periodic check driven
  by ``threading.Timer`` (the admin-file age check). ``ImmediateIds`` hands a freed client id out
  again at once; ``QuarantinedIds`` keeps freed ids back for a while so the disconnected client
  can reconnect with its id.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from pytest_faultline import point

WORKER_BOUND_S = 5.0


class StaleHandle(Exception):
    """A handle whose slot no longer belongs to the client using it."""


@dataclass
class Handle:
    slot: int
    owner: str


class SlotPool:
    """Reuses the most recently freed slot first, as a memory allocator reuses a freed block."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0

    def acquire(self) -> int:
        if self._free:
            return self._free.pop()
        self._next += 1
        return self._next

    def release(self, slot: int) -> None:
        self._free.append(slot)


class _WorkerRegistry:
    """Shared plumbing: clients, the slot -> session table, and the cleanup worker."""

    def __init__(self) -> None:
        self.pool = SlotPool()
        self.clients: dict[str, Handle] = {}
        self.sessions: dict[int, str] = {}  # slot -> client; what stale references point into
        self.forgotten: list[str] = []
        self.cleanup_threads: list[str] = []
        self._work: queue.Queue[tuple[str, Handle] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="cleanup-worker", daemon=True)
        self._worker.start()

    def connect(self, client: str) -> Handle:
        handle = Handle(self.pool.acquire(), client)
        self.clients[client] = handle
        self.sessions[handle.slot] = client
        return handle

    def route(self, handle: Handle) -> str:
        """The client a message on ``handle`` goes to; StaleHandle if not its owner's."""
        owner = self.sessions.get(handle.slot)
        if owner != handle.owner:
            raise StaleHandle(f"slot {handle.slot} belongs to {owner!r}, not {handle.owner!r}")
        return owner

    def drain(self) -> bool:
        """Wait (bounded) until the worker has handled everything queued so far."""
        done = self._marker = threading.Event()
        self._work.put(("", Handle(-1, "")))  # a marker message
        return done.wait(WORKER_BOUND_S)

    def close(self) -> None:
        self._work.put(None)
        self._worker.join(WORKER_BOUND_S)

    def _run(self) -> None:
        while True:
            item = self._work.get(timeout=WORKER_BOUND_S * 4)
            if item is None:
                return
            client, handle = item
            if handle.slot < 0:
                self._marker.set()
                continue
            self.forget(client, handle)

    def forget(self, client: str, handle: Handle) -> None:
        raise NotImplementedError


class NaiveRegistry(_WorkerRegistry):
    def disconnect(self, client: str) -> None:
        handle = self.clients.pop(client)
        self.pool.release(handle.slot)  # the memory is freed now ...
        self._work.put((client, handle))  # ... its references are removed later, by the worker

    def forget(self, client: str, handle: Handle) -> None:
        self.cleanup_threads.append(threading.current_thread().name)
        self.sessions.pop(handle.slot, None)  # wipes whoever owns the slot by now
        self.forgotten.append(client)


class FixedRegistry(_WorkerRegistry):
    def disconnect(self, client: str) -> None:
        handle = self.clients.pop(client)
        self.sessions.pop(handle.slot, None)  # references removed before the slot is freed
        self.pool.release(handle.slot)
        self._work.put((client, handle))  # the worker only does bookkeeping now

    def forget(self, client: str, handle: Handle) -> None:
        self.cleanup_threads.append(threading.current_thread().name)
        self.forgotten.append(client)


# -- client ids, periodic checks ----------------------------------------------------------------


class ImmediateIds:
    """Hands out the most recently freed id first, at once."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 100

    def allocate(self) -> int:
        if self._free:
            return self._free.pop()
        self._next += 1
        return self._next

    def free(self, cid: int) -> None:
        self._free.append(cid)

    def reclaim(self, cid: int) -> bool:
        """Give ``cid`` back to the client that had it, if it is still free."""
        if cid in self._free:
            self._free.remove(cid)
            return True
        return False


class QuarantinedIds(ImmediateIds):
    """Freed ids stay out of circulation for ``QUARANTINE_S`` seconds (the incident's fix)."""

    QUARANTINE_S = 300.0

    def __init__(self) -> None:
        super().__init__()
        self._freed_at: dict[int, float] = {}

    def allocate(self) -> int:
        now = time.monotonic()
        for cid in list(self._free):
            if now - self._freed_at[cid] >= self.QUARANTINE_S:
                self._free.remove(cid)
                return cid
        self._next += 1
        return self._next

    def free(self, cid: int) -> None:
        self._freed_at[cid] = time.monotonic()
        self._free.append(cid)


@dataclass
class Server:
    """Disconnects clients not heard from for ``TIMEOUT_S``, checked every ``CHECK_S``."""

    ids: ImmediateIds
    TIMEOUT_S: float = 60.0
    CHECK_S: float = 10.0
    last_seen: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    disconnected: list[str] = field(default_factory=list)
    checks: int = 0
    _timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _schedule(self) -> None:
        timer = threading.Timer(self.CHECK_S, self._check)
        timer.daemon = True
        with self._lock:
            self._timer = timer
        timer.start()

    def _check(self) -> None:
        now = time.monotonic()
        with self._lock:
            self.checks += 1
            if self._timer is None:
                return
            stale = [cid for cid, seen in self.last_seen.items() if now - seen > self.TIMEOUT_S]
            for cid in stale:
                del self.last_seen[cid]
                self.disconnected.append(self.names.pop(cid))
                self.ids.free(cid)
        self._schedule()

    def connect(self, name: str) -> int:
        with self._lock:
            cid = self.ids.allocate()
            self.names[cid] = name
            self.last_seen[cid] = time.monotonic()
            return cid

    def heartbeat(self, cid: int) -> None:
        with self._lock:
            self.last_seen[cid] = time.monotonic()
        point("server.heartbeat", cid=cid)

    def reconnect(self, name: str, cid: int) -> int:
        """A disconnected client comes back with its id; it gets the id back if it is free."""
        with self._lock:
            if cid in self.names:
                raise StaleHandle(f"client id {cid} of {name!r} was given to {self.names[cid]!r}")
            if not self.ids.reclaim(cid):
                cid = self.ids.allocate()
            self.names[cid] = name
            self.last_seen[cid] = time.monotonic()
            return cid


# -- callbacks for the timer, finalizer and asyncio tests -----------------------------------------

ran_log: list[tuple[str, str]] = []  # (what, thread name), appended by the callbacks below


def expire_session(name: str) -> None:
    """A timer callback that ends a session."""
    ran_log.append((f"expired {name}", threading.current_thread().name))


def release_buffer(buffer_id: int) -> None:
    """A finalizer: gives a buffer back when its owner is collected."""
    ran_log.append((f"released {buffer_id}", threading.current_thread().name))


class Buffer:
    """Owns a buffer id; a ``weakref.finalize`` returns it when the Buffer is collected."""

    def __init__(self, buffer_id: int) -> None:
        import weakref

        self.buffer_id = buffer_id
        self.finalizer = weakref.finalize(self, release_buffer, buffer_id)


def on_closed(name: str) -> None:
    """An event-loop callback (call_soon / call_later)."""
    ran_log.append((f"closed {name}", threading.current_thread().name))


def on_done(future: object) -> None:
    """A Future done-callback."""
    ran_log.append((f"done {future.result()}", threading.current_thread().name))  # type: ignore[attr-defined]


async def close_session(name: str) -> str:
    """A coroutine cleanup, run as a task."""
    ran_log.append((f"closing {name}", threading.current_thread().name))
    return f"{name} closed"


async def reopen(name: str) -> str:
    """A coroutine the deferral waits for (``until``)."""
    ran_log.append((f"reopened {name}", threading.current_thread().name))
    return name
