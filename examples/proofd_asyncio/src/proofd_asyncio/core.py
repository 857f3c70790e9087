"""What both servers share: sessions, the line protocol, the client.

Protocol, one line each way: ``HELLO <client id>`` opens (or re-opens) the client's session and
is answered ``OK <session number>``; ``PING`` is answered ``PONG <session number>`` while the
connection's session is the client's current one, else ``ERR no session``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class Session:
    """One client's session: what the server holds for a client id while it is connected."""

    cid: str
    number: int
    closed: bool = False


@dataclass
class BaseServer:
    """The session table and the connection handler; ``disconnect`` is what differs."""

    sessions: dict[str, Session] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    opened: int = 0

    async def open(self, cid: str) -> Session:
        """A client says HELLO: its new session replaces whatever it had."""
        async with self.lock:
            self.opened += 1
            session = Session(cid, self.opened)
            self.sessions[cid] = session
        return session

    async def disconnect(self, session: Session) -> None:
        raise NotImplementedError

    async def settle(self) -> None:
        """Wait for the background cleanups started so far (for tests and shutdown)."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
            # The done callbacks that discard them run later; on 3.12 a gather of finished
            # tasks does not even yield, so without this the loop would spin for ever.
            self.background.difference_update([t for t in self.background if t.done()])

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: HELLO, then PINGs until the peer goes away."""
        session: Session | None = None
        try:
            hello = (await reader.readline()).decode().split()
            if len(hello) != 2 or hello[0] != "HELLO":
                return
            session = await self.open(hello[1])
            writer.write(f"OK {session.number}\n".encode())
            await writer.drain()
            while line := await reader.readline():
                if line.strip() != b"PING":
                    continue
                current = self.sessions.get(session.cid)
                reply = f"PONG {session.number}" if current is session else "ERR no session"
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if session is not None:
                await self.disconnect(session)
            writer.close()

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port)


class Client:
    """A client connection: HELLO on connect, then PINGs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.session = 0

    @classmethod
    async def connect(cls, address: tuple[str, int], cid: str) -> Client:
        reader, writer = await asyncio.open_connection(*address)
        client = cls(reader, writer)
        writer.write(f"HELLO {cid}\n".encode())
        await writer.drain()
        reply = (await reader.readline()).decode().split()
        if reply[:1] != ["OK"]:
            raise ConnectionError(f"server refused HELLO: {reply}")
        client.session = int(reply[1])
        return client

    async def ping(self) -> str:
        self.writer.write(b"PING\n")
        await self.writer.drain()
        return (await self.reader.readline()).decode().strip()

    async def wait_dropped(self) -> None:
        """Until the server side of the connection is gone (EOF or reset)."""
        try:
            while await self.reader.read(1024):
                pass
        except ConnectionError:
            pass

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
