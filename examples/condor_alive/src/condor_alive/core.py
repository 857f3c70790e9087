"""What the buggy and the fixed implementations share: the wire format, the server loop, the
claim table and the startd (the incident's bug is on the schedd's side of the protocol).

Wire format, in the style of HTCondor's CEDAR stream: a message is one or more packets; a packet
is a 5-byte header (1 byte: ``E`` ends the message, ``M`` more follows; 4 bytes: payload length,
big-endian) and its payload. Fields are typed: ``i`` + 8-byte signed integer, ``s`` + 4-byte
length + bytes (a secret, such as a claim id).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pytest_faultline import point

ALIVE = 441
KNOWN, UNKNOWN = 1, -1
HEADER = struct.Struct("!cI")
READ_TIMEOUT_S = 0.5  # the schedd's socket timeout for one read
REPLY_TIMEOUT_S = 5.0  # how long the startd waits for the schedd's answer
ACCEPT_POLL_S = 0.05

T = TypeVar("T")

schedd_log = logging.getLogger("condor_alive.schedd")
startd_log = logging.getLogger("condor_alive.startd")


class CommunicationError(Exception):
    """The message did not arrive whole: a timeout or the peer closing mid-message."""


def recv_exactly(sock: socket.socket, n: int, peer: str) -> bytes:
    """Read exactly ``n`` bytes, however the kernel splits them; raise on timeout or EOF."""
    chunks = bytearray()
    while len(chunks) < n:
        try:
            chunk = sock.recv(n - len(chunks))
        except TimeoutError:
            raise CommunicationError(
                f"condor_read(): timeout reading {n} bytes from {peer}."
            ) from None
        if not chunk:
            raise CommunicationError(
                f"condor_read(): Socket closed when trying to read {n} bytes from {peer}"
            )
        chunks += chunk
    return bytes(chunks)


class BaseStream:
    """A message stream. Both implementations share it; they differ in one switch:

    ``clear_flag_on_read``: whether an attempt to read clears ``allow_empty_message``. The
    server sets that flag when a command arrives, so that a command with no payload can be
    ended with ``end_of_message()``. Without the switch, the first ``end_of_message()`` after a
    command returns True even when the read before it failed: the incident's bug.
    """

    clear_flag_on_read = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        host, port = sock.getpeername()[:2]
        self.peer = f"<{host}:{port}>"
        self.allow_empty_message = False
        self._out = bytearray()
        self._packet: bytes | None = None  # the incoming message's packet, once read
        self._pos = 0
        self._failed = False

    # -- sending ------------------------------------------------------------------------------

    def put_int(self, value: int) -> None:
        self._out += b"i" + struct.pack("!q", value)

    def put_secret(self, value: str) -> None:
        data = value.encode()
        self._out += b"s" + struct.pack("!I", len(data)) + data

    def send_message(self) -> None:
        """End the outgoing message and send it as one packet."""
        self.sock.sendall(HEADER.pack(b"E", len(self._out)) + bytes(self._out))
        self._out.clear()

    # -- reading ------------------------------------------------------------------------------

    def get_int(self) -> int | None:
        """The next integer field, or None if the read failed (the failure is remembered)."""
        return self._get(lambda: int(struct.unpack("!q", self._field(b"i", 8))[0]))

    def get_secret(self) -> str | None:
        """The next secret field, or None if the read failed (the failure is remembered)."""

        def read() -> str:
            (length,) = struct.unpack("!I", self._field(b"s", 4))
            return self._take(length).decode()

        return self._get(read)

    def end_of_message(self) -> bool:
        """True if the incoming message was read whole and without error; starts the next."""
        if self.allow_empty_message:
            self.allow_empty_message = False
            self._reset()
            return True
        ok = not self._failed and self._packet is not None and self._pos == len(self._packet)
        self._reset()
        return ok

    def _get(self, read: Callable[[], T]) -> T | None:
        if self.clear_flag_on_read:
            self.allow_empty_message = False
        try:
            return read()
        except CommunicationError:
            self._failed = True
            return None

    def _field(self, kind: bytes, size: int) -> bytes:
        if self._take(1) != kind:
            raise CommunicationError(f"expected a field of type {kind!r}")
        return self._take(size)

    def _take(self, n: int) -> bytes:
        if self._packet is None:
            self._packet = self._read_packet()
        data = self._packet[self._pos : self._pos + n]
        if len(data) != n:
            raise CommunicationError(f"message ended: wanted {n} bytes, {len(data)} left")
        self._pos += n
        return data

    def _read_packet(self) -> bytes:
        try:
            header = recv_exactly(self.sock, HEADER.size, self.peer)
        except CommunicationError as exc:
            schedd_log.warning("%s", exc)
            schedd_log.warning("IO: Failed to read packet header")
            raise
        _flag, length = HEADER.unpack(header)
        return recv_exactly(self.sock, length, self.peer)

    def _reset(self) -> None:
        self._packet, self._pos, self._failed = None, 0, False


@dataclass
class Claim:
    claim_id: str
    job_id: str


@dataclass
class BaseSchedd:
    """The schedd: a TCP server with a command table. Handlers differ per implementation."""

    claims: dict[str, Claim] = field(default_factory=dict)
    replies: list[tuple[str | None, int]] = field(default_factory=list)  # (claim id, reply)
    errors: list[str] = field(default_factory=list)
    stream_class: type[BaseStream] = BaseStream
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(ACCEPT_POLL_S)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="schedd", daemon=True)
        self.commands: dict[int, Callable[[BaseStream], bool]] = {ALIVE: self.receive_startd_alive}

    def start(self) -> BaseSchedd:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()
        if self._thread.is_alive():
            raise RuntimeError("schedd thread did not stop within 10 s")

    def __enter__(self) -> BaseSchedd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(READ_TIMEOUT_S)
                try:
                    self._handle_connection(conn)
                except (CommunicationError, OSError) as exc:
                    self.errors.append(str(exc))

    def _handle_connection(self, conn: socket.socket) -> None:
        stream = self.stream_class(conn)
        command = stream.get_int()
        if command is None or not stream.end_of_message():
            raise CommunicationError("failed to read the command")
        schedd_log.info("Received TCP command %d (ALIVE) from %s", command, stream.peer)
        point("schedd.command", command=command)
        self.dispatch(command, stream)

    def dispatch(self, command: int, stream: BaseStream) -> None:
        """Call the command's handler (the fixed schedd first waits for the payload)."""
        handler = self.commands[command]
        stream.allow_empty_message = True
        handler(stream)

    def receive_startd_alive(self, stream: BaseStream) -> bool:
        raise NotImplementedError

    def answer_alive(self, stream: BaseStream, claim_id: str | None) -> None:
        """Answer an ALIVE: 1 if the claim is known, -1 (and a log line) if not."""
        if claim_id in self.claims:
            self.reply(stream, claim_id, KNOWN)
        else:
            schedd_log.warning("Received startd keepalive for unknown claimid %s", claim_id)
            self.reply(stream, claim_id, UNKNOWN)

    def reply(self, stream: BaseStream, claim_id: str | None, answer: int) -> None:
        self.replies.append((claim_id, answer))
        stream.put_int(answer)
        stream.send_message()


@dataclass
class Startd:
    """Holds a claim (and the job running under it) and keeps it alive with the schedd."""

    schedd_address: tuple[str, int]
    claim: Claim | None
    killed_jobs: list[str] = field(default_factory=list)
    comm_failures: int = 0

    def send_alive(self) -> int | None:
        """One ALIVE round. Returns the schedd's answer, or None on a communication failure
        (the claim is kept and the next period retries)."""
        if self.claim is None:
            return None
        try:
            with socket.create_connection(self.schedd_address, timeout=REPLY_TIMEOUT_S) as sock:
                stream = BaseStream(sock)
                stream.put_int(ALIVE)
                stream.send_message()
                point("startd.before_payload", claim_id=self.claim.claim_id)
                stream.put_secret(self.claim.claim_id)
                stream.send_message()
                header = recv_exactly(sock, HEADER.size, stream.peer)
                body = recv_exactly(sock, HEADER.unpack(header)[1], stream.peer)
        except (CommunicationError, OSError) as exc:
            self.comm_failures += 1
            startd_log.warning(
                "Alive to schedd failed (%s); keeping the claim, retry next period", exc
            )
            return None
        answer = int(struct.unpack("!q", body[1:9])[0])
        startd_log.info(
            "slot1: Received Alive response of %d from schedd job %s", answer, self.claim.job_id
        )
        if answer == UNKNOWN:
            startd_log.warning(
                "slot1: State change: claim no longer recognized by the schedd - removing claim"
            )
            self.killed_jobs.append(self.claim.job_id)
            self.claim = None
        return answer
