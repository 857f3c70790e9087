"""The messages of ``faultline serve``'s HTTP server (:mod:`._http`): its limits, requests and
responses, a connection's parse state, and the parsing of a request's head and body
(``Content-Length`` or chunked, ``Expect: 100-continue``) with the error each bad input gets.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BODY",
    "BUSY",
    "LINGERING",
    "WAITING",
    "WRITING",
    "HTTPConn",
    "Handler",
    "Limits",
    "Refused",
    "Request",
    "Response",
    "body_length",
    "error_response",
    "json_response",
    "parse_head",
    "read_body",
]

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True)
class Limits:
    """The server's bounds. The timeouts are Toxiproxy's (Go ``http.Server``: ReadTimeout
    15 s, WriteTimeout 30 s, IdleTimeout 60 s)."""

    max_header_bytes: int = 64 * 1024  # request line and headers
    max_body_bytes: int = 1024 * 1024  # a /populate of thousands of proxies fits
    read_timeout_s: float = 15.0  # a request must arrive whole within this of its first byte
    idle_timeout_s: float = 60.0  # a keep-alive connection may wait this long between requests
    write_timeout_s: float = 30.0  # an answer must be taken by the client within this
    workers: int = 8  # handler threads, started as needed
    max_connections: int = 512  # open connections; then the oldest idle or slow one goes
    backlog: int = 1024  # the kernel caps it at net.core.somaxconn


@dataclass
class Request:
    """One whole request. Header names are lower case; repeated headers are joined by
    ``", "``."""

    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str]
    body: bytes
    client: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, answer: Any) -> Response:
    """A response with ``answer`` as its JSON body (none for ``None``)."""
    if answer is None:
        return Response(status)
    body = json.dumps(answer).encode() + b"\n"
    return Response(status, body, [("Content-Type", "application/json")])


def error_response(status: int, message: str) -> Response:
    """Toxiproxy's error shape: ``{"error": message, "status": status}``."""
    return json_response(status, {"error": message, "status": status})


Handler = Callable[[Request], Response]


class Refused(Exception):
    """The request cannot be served: answer ``response`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = error_response(status, message)


# Connection states.
WAITING = "waiting"  # between requests (idle deadline), or reading one (read deadline)
BODY = "body"  # headers parsed, reading the body (read deadline)
BUSY = "busy"  # a handler thread has the request
WRITING = "writing"  # an answer is being sent (write deadline)
LINGERING = "linger"  # answered an error: draining input before the close


class HTTPConn:
    def __init__(self, sock: socket.socket, client: str, now: float, idle_s: float) -> None:
        self.sock = sock
        self.client = client
        self.state = WAITING
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.mask = 0
        self.deadline = now + idle_s
        self.started = False  # bytes of a request have arrived (read deadline, not idle)
        self.close_after = False
        # The request being read.
        self.method = ""
        self.target = ""
        self.version = (1, 1)
        self.headers: dict[str, str] = {}
        self.length = 0  # body bytes still to read (Content-Length), or -1 for chunked
        self.body = bytearray()
        self.chunk_left = -1  # chunked: bytes left in the current chunk; -1 = at a size line
        self.wants_continue = False  # Expect: 100-continue and a body to come


def parse_head(conn: HTTPConn, limits: Limits) -> bool:
    """Parse the request line and headers once they have arrived whole; False until then."""
    limit = limits.max_header_bytes
    end = _HEAD_END.search(conn.inbuf, 0, limit + 4)
    if end is None:
        if len(conn.inbuf) > limit:
            raise Refused(431, f"request headers larger than {limit} bytes")
        return False
    head = bytes(conn.inbuf[: end.start()])
    del conn.inbuf[: end.end()]
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise Refused(400, f"bad request line: {lines[0][:100]!r}")
    method, target, version_text = parts
    version = _VERSION.fullmatch(version_text)
    if version is None:
        raise Refused(400, f"bad request line: {lines[0][:100]!r}")
    if version.group(1) != "1":
        raise Refused(505, f"HTTP version not supported: {version_text}; use HTTP/1.1")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):  # also obs-fold and space before ':'
            raise Refused(400, f"bad request header line: {line[:100]!r}")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    conn.method, conn.target, conn.headers = method, target, headers
    conn.version = (1, int(version.group(2)))
    conn.body = bytearray()
    conn.chunk_left = -1
    conn.length = body_length(headers, limits)
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep = "keep-alive" in connection if conn.version == (1, 0) else "close" not in connection
    conn.close_after = not keep
    expect = headers.get("expect")
    if expect is not None and expect.lower() != "100-continue":
        raise Refused(417, f"Expect: {expect[:100]!r} is not supported")
    conn.wants_continue = expect is not None and conn.version >= (1, 1) and conn.length != 0
    conn.state = BODY
    return True


def body_length(headers: dict[str, str], limits: Limits) -> int:
    """The body's length from the headers (-1: chunked), refused if bad or over the limit."""
    limit = limits.max_body_bytes
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if "content-length" in headers:
            raise Refused(400, "bad request: both Transfer-Encoding and Content-Length")
        if coding.strip().lower() != "chunked":
            raise Refused(501, f"Transfer-Encoding {coding[:100]!r} is not supported")
        return -1
    text = headers.get("content-length")
    if text is None:
        return 0
    values = {v.strip() for v in text.split(",")}
    value = next(iter(values))
    if len(values) != 1 or not (value.isascii() and value.isdigit()):
        raise Refused(
            400, f"bad Content-Length {text[:40]!r}: it must be a whole number of bytes >= 0"
        )
    length = int(value) if len(value) <= 18 else limit + 1  # never parse a huge number
    if length > limit:
        raise Refused(413, f"request body of {value[:40]} bytes is over the limit of {limit}")
    return length


def read_body(conn: HTTPConn, limits: Limits) -> bool:
    """Move body bytes from the input buffer; True once the body is whole."""
    if conn.length >= 0:
        take = min(conn.length, len(conn.inbuf))
        conn.body += conn.inbuf[:take]
        del conn.inbuf[:take]
        conn.length -= take
        return conn.length == 0
    limit = limits.max_body_bytes
    while True:
        if conn.chunk_left > 0:
            take = min(conn.chunk_left, len(conn.inbuf))
            conn.body += conn.inbuf[:take]
            del conn.inbuf[:take]
            conn.chunk_left -= take
            if conn.chunk_left:
                return False
            conn.chunk_left = -2  # the CRLF after the chunk's data
        if conn.chunk_left == -2:
            if conn.inbuf[:2] == b"\r\n":
                del conn.inbuf[:2]
            elif conn.inbuf[:1] == b"\n":
                del conn.inbuf[:1]
            elif bytes(conn.inbuf) in (b"", b"\r"):
                return False
            else:
                raise Refused(400, "bad chunked body: a chunk's data is longer than its size")
            conn.chunk_left = -1
        if conn.chunk_left == -3:  # trailers, up to an empty line
            end = conn.inbuf.find(b"\n")
            if end < 0:
                if len(conn.inbuf) > limits.max_header_bytes:
                    raise Refused(431, "chunked body trailers too large")
                return False
            line = conn.inbuf[:end].rstrip(b"\r")
            del conn.inbuf[: end + 1]
            if not line:
                return True
            continue
        end = conn.inbuf.find(b"\n")
        if end < 0:
            if len(conn.inbuf) > 1024:
                raise Refused(400, "bad chunked body: a chunk size line is too long")
            return False
        size_text = conn.inbuf[:end].rstrip(b"\r").split(b";", 1)[0].strip()
        del conn.inbuf[: end + 1]
        size = int(size_text, 16) if _CHUNK_SIZE.fullmatch(size_text) else -1
        if size < 0:
            raise Refused(400, f"bad chunked body: chunk size {bytes(size_text)[:20]!r}")
        if len(conn.body) + size > limit:
            raise Refused(413, f"request body over the limit of {limit} bytes")
        conn.chunk_left = size if size else -3
