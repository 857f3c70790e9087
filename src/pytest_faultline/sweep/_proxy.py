"""The sweep at the test's embedded proxies: each proxied connection, and each chunk of data
crossing it, is a site. A fault planned there is one of the proxy's own toxics (``refuse``,
``limit_data``, ``reset_peer``, ``timeout``, ``reply_lost``), put on that one connection from the
site on: the stage below watches a direction of a connection and takes the toxic's stage in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..net.proxy import RandomChooser
from ..net.toxics import DATA, EOF, Item, Stage, ToxicState, make_stage

if TYPE_CHECKING:
    from ..net._conns import Conn
    from ..net.relay import ProxyLoop
    from .kinds import ProxyCut

__all__ = ["SiteStage", "cut_stage", "watching"]

# The toxics a sweep puts on draw nothing (no jitter, no slices): any chooser will do.
_CHOOSER = RandomChooser(random.Random(0))
WATCH = "sweep"
STALL = "timeout"

Watcher = Callable[["SiteStage", int, int, float], None]


def watching(stream: str) -> ToxicState:
    """The stage's own toxic state: not one of the proxy's toxics (nobody can remove it); it
    becomes the cut's when one is put in, so the proxy's event names what cut the connection."""
    return ToxicState(WATCH, WATCH, stream, 1.0, {})


def cut_stage(cut: ProxyCut, label: str, now: float, conn: Conn) -> tuple[ToxicState, Stage]:
    state = ToxicState(label, cut.type, cut.stream, 1.0, dict(cut.attributes))
    return state, make_stage(state, _CHOOSER, now, conn)


class SiteStage(Stage):
    """Watches one direction of one proxied connection: before each chunk passes, ``watch`` is
    told its offset and size (and may :meth:`take` a cut for this direction or its sibling's);
    after a cut, the chunks go through the cut's stage instead."""

    def __init__(
        self,
        stream: str,
        now: float,
        loop: ProxyLoop,
        conn: Conn,
        *,
        watch: Watcher,
        name: str,
        op: str,
        location: str,
    ) -> None:
        super().__init__(watching(stream), _CHOOSER, now, conn)
        self.loop = loop
        self.conn = conn
        self.watch = watch
        self.name = name
        self.op = op
        self.location = location
        self.offset = 0
        self.inner: Stage | None = None
        self.sibling: SiteStage | None = None

    def take(self, cut: ProxyCut, label: str, now: float) -> None:
        """Run ``cut`` on its stream of this connection (this direction or the sibling's)."""
        target = self if cut.stream == self.toxic.stream or self.sibling is None else self.sibling
        state = target.toxic
        state.name, state.type, state.attributes = label, cut.type, dict(cut.attributes)
        target.inner = make_stage(state, _CHOOSER, now, target.link)

    def _sync(self) -> None:
        assert self.inner is not None
        self.acted, self.detail = self.inner.acted, self.inner.detail

    def data(self, t: float, chunk: bytes) -> list[Item]:
        if self.inner is None:
            self.watch(self, self.offset, len(chunk), t)
        self.offset += len(chunk)
        if self.inner is None:
            return [Item(t, DATA, chunk)]
        items = self.inner.data(t, chunk)
        self._sync()
        return items

    def eof(self, t: float) -> list[Item]:
        if self.inner is None:
            return [Item(t, EOF)]
        if self.toxic.type == STALL:
            # A stall holds the end of the stream back too (a timeout toxic passes it): the
            # peer waits until its own timeout, or until the toxic closes the connection.
            return []
        items = self.inner.eof(t)
        self._sync()
        return items

    def deadline(self) -> float | None:
        return None if self.inner is None else self.inner.deadline()

    def fire(self, now: float) -> list[Item]:
        if self.inner is None:
            return []
        items = self.inner.fire(now)
        self._sync()
        return items

    def removed(self, now: float) -> list[Item]:
        return [] if self.inner is None else self.inner.removed(now)
