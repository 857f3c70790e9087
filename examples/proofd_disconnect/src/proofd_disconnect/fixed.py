"""The daemon after the fix.

1. ``Protocol.recycle`` removes every reference to the link and its ``Response`` itself,
   synchronously, under the client manager's lock, before ``reset()`` releases the response,
   whether or not the admin directory can be removed. Only bookkeeping is left to the cron.
2. The admin path is kept and a ``disconnected`` marker written, for both kinds of disconnect
   (a dropped link and ``check_clients``): the cid survives for the reconnect.
3. A client with a busy session gets ``RECONNECT_S`` to come back before the session is killed.
4. A freed cid is quarantined for ``QUARANTINE_S``: another connection of the same user cannot
   take it from the client about to reconnect.
"""

from __future__ import annotations

from pytest_faultline import point

from .core import CLIENT_DISCONNECT, BaseClientManager, BaseDaemon, BaseProtocol, ClientIds, log

RECONNECT_S = 60.0
QUARANTINE_S = 60.0


class QuarantinedIds(ClientIds):
    quarantine_s = QUARANTINE_S


class Protocol(BaseProtocol):
    def recycle(self) -> None:
        point("proofd.recycle", cid=None if self.client is None else self.client.cid)
        manager = self.daemon.manager
        with manager.lock:
            for client in manager.using(self):
                # Before the references go: a concurrent check_active_sessions must never see
                # a busy session without a client and without its reconnect time.
                self.daemon.sessions.set_reconnect_time(client, RECONNECT_S)
                try:
                    (client.admin_path / "disconnected").write_text("link dropped\n")
                except OSError as exc:  # the references go all the same
                    log.warning("cannot mark %s disconnected: %s", client.admin_path, exc)
            manager.remove_references(self)  # before the response is released, not after
        self.reset()
        manager.post(CLIENT_DISCONNECT, self)


class ClientManager(BaseClientManager):
    ids_class = QuarantinedIds

    def handle_disconnect(self, protocol: BaseProtocol) -> None:
        # Nothing points at the link any more: only sessions past their reconnect time go.
        self.daemon.sessions.check_active_sessions()


class Daemon(BaseDaemon):
    protocol_class = Protocol
    manager_class = ClientManager
