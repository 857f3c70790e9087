"""The daemon as it was.

1. ``Protocol.recycle`` posts CLIENT_DISCONNECT to the client cron and returns; ``reset()`` then
   releases the link's ``Response`` at once. Until the cron gets round to it, every session still
   holds the released response: the next connection may already be using it.
2. The cron's handler removes the admin directory first and, if that fails, ``continue``s past
   the removal of the references. ``check_clients`` had usually removed the directory already,
   so after a timeout the references were never removed at all.
3. The admin path is deleted on disconnect, so the cid is lost: a reconnect gets a new client.
4. ``check_active_sessions`` kills sessions without a valid client at once: no reconnect time.
5. A freed cid is handed out again immediately, to whoever of that user connects first.
"""

from __future__ import annotations

import shutil

from pytest_faultline import point

from .core import (
    CLIENT_DISCONNECT,
    BaseClientManager,
    BaseDaemon,
    BaseProtocol,
    Client,
    ClientIds,
    log,
)


class Protocol(BaseProtocol):
    def recycle(self) -> None:
        point("proofd.recycle", cid=None if self.client is None else self.client.cid)
        self.daemon.manager.post(CLIENT_DISCONNECT, self)  # references removed later, by the cron
        self.reset()  # ... but the responses are released now


class ClientManager(BaseClientManager):
    ids_class = ClientIds  # no quarantine

    def handle_disconnect(self, protocol: BaseProtocol) -> None:
        with self.lock:
            clients = self.using(protocol)
        for client in clients:
            try:
                shutil.rmtree(client.admin_path)
            except OSError as exc:
                log.warning("cannot remove admin path %s: %s", client.admin_path, exc)
                continue  # the stray continue: the references below are never removed
            with self.lock:
                self.remove_references(protocol)
            self.daemon.sessions.check_active_sessions()

    def drop_idle(self, client: Client, protocol: BaseProtocol) -> None:
        shutil.rmtree(client.admin_path, ignore_errors=True)
        protocol.close_link()


class Daemon(BaseDaemon):
    protocol_class = Protocol
    manager_class = ClientManager
