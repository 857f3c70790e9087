"""The fix, as in the incident: the disconnect handler removes the session itself, before it
returns, and only if it is still the client's current one; what may run later (statistics)
names the session, never just the client id."""

from __future__ import annotations

from .core import BaseServer, Client, Session

__all__ = ["Client", "SessionServer"]


class SessionServer(BaseServer):
    async def disconnect(self, session: Session) -> None:
        session.closed = True
        async with self.lock:
            if self.sessions.get(session.cid) is session:
                del self.sessions[session.cid]
        self._spawn(self.cleanup(session))

    async def cleanup(self, session: Session) -> None:
        """Count the disconnect; remove the session only if it is still the current one."""
        async with self.lock:
            self.stats[session.cid] = self.stats.get(session.cid, 0) + 1
            if self.sessions.get(session.cid) is session:
                del self.sessions[session.cid]
