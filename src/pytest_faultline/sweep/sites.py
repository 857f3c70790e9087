"""Fault sites: the places a sweep can inject a fault, named so that another run of the same body
finds the same place again (a point's or call's arrival number; a connection's byte offset)."""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass, field

from ..decider import derive_seed

__all__ = [
    "CALL",
    "POINT",
    "PROXY",
    "SOCKET",
    "THREAD",
    "WHERE_CODES",
    "Site",
    "caller_location",
    "stem_hash",
]

POINT = "point"
CALL = "call"
SOCKET = "socket"
THREAD = "thread"  # a scheduling point of a managed thread where another thread could run
PROXY = "proxy"
WHERE_CODES = {POINT: 0, CALL: 1, SOCKET: 2, THREAD: 3, PROXY: 4}
WHERE_NAMES = {code: where for where, code in WHERE_CODES.items()}

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIRS = tuple(
    os.path.normcase(os.path.abspath(p))
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)


@dataclass(frozen=True)
class Site:
    """One place a fault can be injected.

    ``where`` is ``"point"`` (a fault point), ``"call"`` (a target named in ``targets=``),
    ``"socket"`` (an operation on a TCP connection of the test), ``"proxy"`` (a connection
    through one of the test's embedded proxies) or ``"thread"`` (a scheduling point of a managed
    thread, when a sweep with a scheduling kind runs the body under the thread scheduler).

    ``name`` is the point's name, the target's path, or the connection's name in its run: for
    sockets ``connected#0``, ``accepted#1`` (the n-th connection made or accepted in the run,
    from 0); for proxies ``redis#2`` (the n-th connection the proxy accepted in the run, from 1,
    as the proxy's events count them); for threads the scheduling point's operation (``acquire
    Odb._odb_lock (R1)``, ``set Endpoint._wake (E1)``, ``point cas.ctrl_units``).

    ``op`` is ``connect``, ``read``, ``write``, ``close`` or ``shutdown`` for sockets; ``accept``,
    ``up`` (a chunk from the client to the server) or ``down`` (from the server to the client)
    for proxies; the thread that reached it for threads; empty for points and calls.

    ``hit`` is the arrival number (from 1) for points, calls and thread sites; for socket reads
    and writes and proxy chunks the number of bytes that crossed the connection in that
    direction before it; 0 for a connect, a close or an accept; the number of earlier shutdowns
    for a shutdown. ``location`` is ``file:line`` of the code that reached it in the recording
    run (for a proxy, the upstream it forwards to)."""

    where: str
    name: str
    op: str
    hit: int
    location: str = field(default="", compare=False)
    blocking: bool = field(default=True, compare=False)

    @property
    def stem(self) -> str:
        """The site without its hit number: what a token names by hash."""
        return f"{self.name}:{self.op}"

    @property
    def key(self) -> str:
        return f"{self.where}:{self.stem}@{self.hit}"

    def describe(self) -> str:
        if self.where == SOCKET:
            if self.op in ("connect", "close"):
                return f"{self.name} {self.op}"
            if self.op == "shutdown":
                return f"{self.name} shutdown" + (f" #{self.hit + 1}" if self.hit else "")
            return f"{self.name} {self.op} after {self.hit} B"
        if self.where == PROXY:
            return f"proxy {self.name} {self.op}" + (f"@{self.hit}" if self.op != "accept" else "")
        if self.where == THREAD:
            return f"{self.op} {self.name} #{self.hit}"
        return f"{self.where} {self.name} #{self.hit}"

    def __str__(self) -> str:
        return self.describe()


def stem_hash(where: str, stem: str) -> int:
    """A 32-bit name for a site's stem, stable across runs and processes (tokens carry it)."""
    return derive_seed(0, "sweep-site", where, stem)


def _internal(filename: str) -> bool:
    path = os.path.normcase(os.path.abspath(filename))
    if path.startswith(os.path.normcase(_PACKAGE_DIR)):
        return True
    if "site-packages" in path or "dist-packages" in path:
        return False
    return path.startswith(_STDLIB_DIRS) or filename.startswith("<")


def caller_location(depth: int = 2) -> str:
    """``file:line`` of the nearest frame outside faultline and the standard library."""
    frame = sys._getframe(depth)
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "?"
    filename = frame.f_code.co_filename
    try:
        shown = os.path.relpath(filename)
    except ValueError:
        shown = filename
    if shown.startswith(".."):
        shown = os.path.basename(filename)
    return f"{shown}:{frame.f_lineno}"
