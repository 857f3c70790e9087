"""The embedded fault proxy: a TCP proxy on its own thread, with Toxiproxy's toxics.

:class:`EmbeddedProxy` needs no ``faultline`` controller (``faultline serve`` runs many of them),
so the per-test wiring (seeded choices, fault events, teardown) comes in through its arguments.
The connections and the data path are in :mod:`.relay`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from .. import _raw
from .._context import EventKind
from .protocol import (
    Chooser,
    ProxyConflict,
    ProxyError,
    ProxyNotFound,
    format_address,
    parse_address,
)
from .relay import JOIN_BOUND_S, ProxyLoop, Recorder, describe_attributes
from .toxics import ToxicState, check_toxic

__all__ = ["EmbeddedProxy", "EmbeddedToxic", "RandomChooser"]


class RandomChooser:
    """Choices from ``random.Random``, for proxies that run without a ``faultline`` controller."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def chance(self, probability: float) -> bool:
        if probability >= 1.0:
            return True
        if probability <= 0.0:
            return False
        return self.rng.random() < probability

    def uniform(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high)

    def choice(self, n: int) -> int:
        return self.rng.randrange(n)


class EmbeddedToxic:
    """A toxic on an :class:`EmbeddedProxy`. ``update()`` and ``remove()`` act on live
    connections at once."""

    def __init__(self, proxy: EmbeddedProxy, state: ToxicState) -> None:
        self._proxy = proxy
        self._state = state

    name = property(lambda self: self._state.name)
    type = property(lambda self: self._state.type)
    stream = property(lambda self: self._state.stream)
    toxicity = property(lambda self: self._state.toxicity)

    @property
    def attributes(self) -> dict[str, int]:
        """The toxic's attributes (a copy), e.g. ``{"latency": 100, "jitter": 0}``."""
        return dict(self._state.attributes)

    def __repr__(self) -> str:
        return f"<Toxic {self.name!r} {self.type} {self.stream} {self.attributes}>"

    def update(self, *, toxicity: float | None = None, **attributes: int) -> None:
        """Merge ``attributes`` into the toxic's (and set ``toxicity`` for new connections)."""
        self._proxy.update_toxic(self.name, toxicity=toxicity, **attributes)

    def remove(self) -> None:
        """Take the toxic off the proxy; a ``timeout`` toxic closes the connections it held."""
        self._proxy.remove_toxic(self.name)

    def as_json(self) -> dict[str, Any]:
        return self._state.as_json()


class EmbeddedProxy(ProxyLoop):
    """A fault proxy on ``listen`` (default ``127.0.0.1:0``) in front of ``upstream``.

    ``chooser(source)`` gives the seeded choices of one source (toxicity rolls, jitter, slice
    sizes); ``record(kind, name, detail)`` is told of every fault injected. Both are optional,
    so the proxy runs without a test around it. Call :meth:`close` when done.
    """

    def __init__(
        self,
        upstream: tuple[str, int] | str,
        *,
        name: str = "proxy",
        listen: tuple[str, int] | str = ("127.0.0.1", 0),
        enabled: bool = True,
        chooser: Callable[[str], Chooser] | None = None,
        record: Recorder | None = None,
    ) -> None:
        super().__init__(
            name,
            parse_address(upstream),
            parse_address(listen, "listen"),
            enabled=enabled,
            chooser=chooser or _random_choosers(),
            record=record,
        )

    # -- public API -------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("enabled" if self.enabled else "disabled")
        return (
            f"<EmbeddedProxy {self.name!r} {format_address(self.listen)} -> "
            f"{format_address(self.upstream)} {state}>"
        )

    @property
    def listen(self) -> tuple[str, int]:
        """``(host, port)`` clients connect to."""
        return self._listen

    @property
    def upstream(self) -> tuple[str, int]:
        """``(host, port)`` the proxy connects to for each client."""
        return self._upstream

    @property
    def enabled(self) -> bool:
        """False while the proxy is down (connections refused)."""
        return self._listener is not None

    @property
    def connections(self) -> int:
        """How many client connections are open through the proxy."""
        return len(self._conns)

    def add_toxic(
        self,
        type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> EmbeddedToxic:
        """Add a toxic (Toxiproxy's types and attributes); it acts on live connections too."""
        type, stream, toxicity, attrs = check_toxic(type, stream, toxicity, attributes)
        state = ToxicState(name or f"{type}_{stream}", type, stream, toxicity, attrs)
        self._call(lambda: self._add_toxic(state))
        return EmbeddedToxic(self, state)

    def toxic(self, name: str) -> EmbeddedToxic:
        """The toxic called ``name``."""
        state = self._toxics.get(name)
        if state is None:
            raise ProxyNotFound(f"toxic not found: proxy {self.name!r} has no toxic {name!r}")
        return EmbeddedToxic(self, state)

    def toxics(self) -> list[EmbeddedToxic]:
        """The proxy's toxics, in the order they apply."""
        return [EmbeddedToxic(self, s) for s in list(self._toxics.values())]

    def update_toxic(self, name: str, *, toxicity: float | None = None, **attributes: int) -> None:
        """Merge ``attributes`` into toxic ``name``'s; see :meth:`EmbeddedToxic.update`."""
        state = self.toxic(name)._state
        _, _, new_toxicity, attrs = check_toxic(
            state.type,
            state.stream,
            state.toxicity if toxicity is None else toxicity,
            attributes,
            base=state.attributes,
        )

        def apply() -> None:
            state.attributes = attrs
            state.toxicity = new_toxicity
            self._note(EventKind.PROXY, f"update toxic {name}: {attrs}, toxicity {new_toxicity}")
            now = _raw.monotonic()
            for conn in list(self._conns.values()):
                flow = conn.flow(state.stream)
                self._touch(flow)
                self._flush(flow, now)

        self._call(apply)

    def remove_toxic(self, name: str) -> None:
        """Remove toxic ``name``."""
        self.toxic(name)
        self._call(lambda: self._remove_toxic(name))

    def reset_toxics(self) -> None:
        """Remove every toxic."""

        def remove_all() -> None:
            for name in list(self._toxics):
                self._remove_toxic(name)

        self._call(remove_all)

    def disable(self) -> None:
        """Take the proxy down: close every connection and refuse new ones (``enabled=false``
        in Toxiproxy)."""
        self._call(self._disable)

    def enable(self) -> None:
        """Listen again, on the same address."""
        self._call(self._enable)

    @contextmanager
    def down(self) -> Iterator[None]:
        """``with proxy.down():`` the proxy is disabled inside the block, enabled after it."""
        self.disable()
        try:
            yield
        finally:
            self.enable()

    def reset_connections(self) -> None:
        """Reset (RST) every live connection through the proxy; new ones are accepted."""
        self._call(lambda: self._drop_all(reset=True, why="reset_connections"))

    def set_upstream(self, upstream: tuple[str, int] | str) -> None:
        """Send new connections to ``upstream``."""
        self._upstream = parse_address(upstream)

    def set_listen(self, listen: tuple[str, int] | str) -> None:
        """Listen on ``listen`` from now on (live connections stay)."""
        address = parse_address(listen, "listen")

        def move() -> None:
            was_enabled = self.enabled
            old = self._listen
            self._close_listener()
            self._listen = address
            if was_enabled:
                try:
                    self._bind()
                except ProxyError:
                    self._listen = old
                    self._bind()
                    raise

        self._call(move)

    def as_json(self) -> dict[str, Any]:
        """Toxiproxy's JSON shape of a proxy."""
        return {
            "name": self.name,
            "listen": format_address(self.listen),
            "upstream": format_address(self.upstream),
            "enabled": self.enabled,
            "toxics": [s.as_json() for s in list(self._toxics.values())],
        }

    def close(self) -> None:
        """Close every connection and the listening socket, and stop the proxy's thread."""
        if self._closed:
            return
        self._closed = True
        try:
            # ProxyError: the thread is gone already; what is left is released below.
            with suppress(ProxyError):
                self._call(lambda: self._drop_all(reset=False, why=None))
        finally:
            self._stopping = True
            self._wake()
            self._finished.wait(JOIN_BOUND_S)
            self._release()

    def __enter__(self) -> EmbeddedProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- toxics and state, run on the proxy thread ------------------------------------------

    def _add_toxic(self, state: ToxicState) -> None:
        if state.name in self._toxics:
            raise ProxyConflict(
                f"toxic already exists: proxy {self.name!r} has a toxic {state.name!r}; "
                f"give the new one another name=, or update() or remove() the old one"
            )
        self._toxics[state.name] = state
        self._note(
            EventKind.PROXY,
            f"add toxic {state.name}: {state.type} {state.stream} {describe_attributes(state)}, "
            f"toxicity {state.toxicity}",
        )
        now = _raw.monotonic()
        for conn in list(self._conns.values()):
            self._attach(conn, state, now)

    def _remove_toxic(self, name: str) -> None:
        state = self._toxics.pop(name, None)
        if state is None:
            raise ProxyNotFound(f"toxic not found: proxy {self.name!r} has no toxic {name!r}")
        self._note(EventKind.PROXY, f"remove toxic {name}")
        now = _raw.monotonic()
        for conn in list(self._conns.values()):
            flow = conn.flow(state.stream)
            for index, (s, stage) in enumerate(flow.stages):
                if s is state:
                    del flow.stages[index]
                    if stage is not None:
                        self._feed(flow, index, stage.removed(now))
                    break
            self._touch(flow)
            self._flush(flow, now)

    def _disable(self) -> None:
        if self._listener is None:
            return
        self._close_listener()
        self._drop_all(reset=False, why="proxy disabled")

    def _enable(self) -> None:
        if self._listener is None:
            self._bind()
            self._note(EventKind.PROXY, "proxy enabled")


def _random_choosers() -> Callable[[str], Chooser]:
    choosers: dict[str, Chooser] = {}

    def chooser(source: str) -> Chooser:
        found = choosers.get(source)
        if found is None:
            found = choosers[source] = RandomChooser()
        return found

    return chooser
