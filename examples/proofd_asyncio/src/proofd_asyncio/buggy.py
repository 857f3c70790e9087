"""The disconnect handler of the incident: the cleanup is posted for later.

``disconnect`` leaves the removal of the client's session to a fire-and-forget task, as
xproofd's ``Recycle()`` posted a message to its cron thread. The task removes *the client id's*
session, whichever it is by the time it runs: a client that reconnected with the same id in
between loses its brand-new session.
"""

from __future__ import annotations

from .core import BaseServer, Client, Session

__all__ = ["Client", "SessionServer"]


class SessionServer(BaseServer):
    async def disconnect(self, session: Session) -> None:
        session.closed = True
        self._spawn(self.cleanup(session))

    async def cleanup(self, session: Session) -> None:
        """Count the disconnect and forget the client's session (by id: the bug)."""
        async with self.lock:
            self.stats[session.cid] = self.stats.get(session.cid, 0) + 1
            self.sessions.pop(session.cid, None)
