"""MIDAS as it was before svn rev 4976 (December 2010).

1. ``cm_msg()`` takes SYSMSG and then the ODB, whoever calls it: called by code holding the ODB
   lock, it takes them in the opposite order (ODB -> SYSMSG).
2. ``cm_disconnect_experiment()`` announces the client's exit while still holding the ODB lock;
   the watchdog and every other ``cm_msg()`` take SYSMSG first. Two threads doing both at once
   deadlock.
3. ``cm_exist()`` enumerates the client keys and reads each one's name in separate ODB calls: a
   client removed in between leaves it holding a stale key, read with create-if-not-found.
"""

from __future__ import annotations

import itertools

from pytest_faultline import point

from .core import CLIENTS, BaseMidas, Client, Message


class Midas(BaseMidas):
    def cm_msg(self, type: str, routine: str, text: str) -> None:
        msg = Message(type, routine, text)
        if self.sysmsg.held_by_me():  # the watchdog's one level of nesting
            self.post_locked(msg)
            return
        with self.sysmsg:
            self.post_locked(msg)

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
        clients = self.odb.db_find_key(CLIENTS)
        if clients is None:
            return False
        for index in itertools.count():
            hkey = self.odb.db_enum_key(clients, index)
            if hkey is None:
                return False
            point("cm_exist.enumerated", key=hkey.path)
            if self.odb.db_get_value(hkey, "Name", "", create=True) == name:
                return True
        raise AssertionError("unreachable")
