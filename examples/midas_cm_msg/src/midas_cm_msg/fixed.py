"""MIDAS after svn rev 4976 (February 2011).

1. One lock order everywhere: SYSMSG before the ODB.
2. ``cm_msg()`` called while the calling thread holds the ODB lock does not take SYSMSG: the
   message is buffered and sent when the ODB lock is released (or at exit). The price: a message
   arrives later than it was written.
3. ``cm_disconnect_experiment()`` announces the exit after releasing the ODB lock.
4. ``cm_exist()`` enumerates and reads under one hold of the ODB lock: no key can be removed in
   between.
"""

from __future__ import annotations

import collections
import threading

from pytest_faultline import point

from .core import CLIENTS, LOCK_TIMEOUT_S, BaseMidas, Client, Message


class Midas(BaseMidas):
    def __init__(self, *, lock_timeout: float | None = LOCK_TIMEOUT_S) -> None:
        super().__init__(lock_timeout=lock_timeout)
        self.pending: collections.deque[Message] = collections.deque()  # atomic appends/pops
        self._flushing = threading.local()
        self.odb.on_unlock.append(self.flush)

    def cm_msg(self, type: str, routine: str, text: str) -> None:
        msg = Message(type, routine, text)
        if self.odb.held_by_me():
            self.pending.append(msg)  # taking SYSMSG now would invert the order
            return
        self._send(msg)

    def _send(self, msg: Message) -> None:
        if self.sysmsg.held_by_me():
            self.post_locked(msg)
            return
        with self.sysmsg:
            self.post_locked(msg)

    def flush(self) -> None:
        """Send the buffered messages (called when a thread releases the ODB lock)."""
        if getattr(self._flushing, "on", False):
            return  # sending takes the ODB lock again; its release must not flush recursively
        self._flushing.on = True
        try:
            while self.pending and not self.odb.held_by_me():
                try:
                    msg = self.pending.popleft()
                except IndexError:  # another thread sent it first
                    return
                self._send(msg)
        finally:
            self._flushing.on = False

    def cm_exit(self) -> None:
        self.flush()

    def cm_disconnect_experiment(self, client: Client) -> None:
        with self.odb:
            key = self.odb.db_find_key(client.key)
            if key is not None:
                self.odb.db_delete_key(key)
        self.cm_msg(
            "INFO",
            "cm_disconnect_experiment",
            f"Program {client.name} on host {client.host} stopped",
        )
        with self.sysmsg:
            self.sysmsg.clients.pop(client.pid, None)
        self.processes.discard(client.pid)

    def cm_exist(self, name: str) -> bool:
        with self.odb:
            clients = self.odb.db_find_key(CLIENTS)
            if clients is None:
                return False
            index = 0
            while (hkey := self.odb.db_enum_key(clients, index)) is not None:
                point("cm_exist.enumerated", key=hkey.path)
                if self.odb.db_get_value(hkey, "Name", "") == name:
                    return True
                index += 1
            return False
