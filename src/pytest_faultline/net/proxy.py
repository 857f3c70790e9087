"""The embedded fault proxy: a TCP proxy on its own thread, with Toxiproxy's toxics.

:class:`EmbeddedProxy` needs no ``faultline`` controller (``faultline serve`` runs many of them),
so the per-test wiring (seeded choices, fault events, teardown) comes in through its arguments.
The connections and the data path are in :mod:`.relay`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .protocol import Chooser, format_address, parse_address
from .relay import ProxyLoop, Recorder
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

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def type(self) -> str:
        return self._state.type

    @property
    def stream(self) -> str:
        return self._state.stream

    @property
    def toxicity(self) -> float:
        return self._state.toxicity

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


class EmbeddedProxy:
    """A fault proxy on ``listen`` (default ``127.0.0.1:0``) in front of ``upstream``.

    ``chooser(source)`` gives the seeded choices of one source (toxicity rolls, jitter, slice
    sizes); ``record(kind, name, detail)`` is told of every fault injected. Both are optional,
    so the proxy runs without a test around it. Call :meth:`close` when done. The connections
    and the data path run in a :class:`~.relay.ProxyLoop` on the proxy's own thread.
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
        self.name = name
        self._loop = ProxyLoop(
            name,
            parse_address(upstream),
            parse_address(listen, "listen"),
            enabled=enabled,
            chooser=chooser or _random_choosers(),
            record=record,
        )

    def __repr__(self) -> str:
        state = "closed" if self._loop.closed else ("enabled" if self.enabled else "disabled")
        return (
            f"<EmbeddedProxy {self.name!r} {format_address(self.listen)} -> "
            f"{format_address(self.upstream)} {state}>"
        )

    @property
    def listen(self) -> tuple[str, int]:
        """``(host, port)`` clients connect to."""
        return self._loop.listen

    @property
    def upstream(self) -> tuple[str, int]:
        """``(host, port)`` the proxy connects to for each client."""
        return self._loop.upstream

    @property
    def enabled(self) -> bool:
        """False while the proxy is down (connections refused)."""
        return self._loop.enabled

    @property
    def connections(self) -> int:
        """How many client connections are open through the proxy."""
        return self._loop.connections

    def add_toxic(
        self,
        type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> EmbeddedToxic:
        """Add a toxic (Toxiproxy's types and attributes, and the embedded proxy's
        ``reply_lost`` and ``refuse``); it acts on live connections too, unless it is limited to
        new ones with ``skip_connections=`` / ``connections=``."""
        type, stream, toxicity, attrs = check_toxic(type, stream, toxicity, attributes)
        state = ToxicState(name or f"{type}_{stream}", type, stream, toxicity, attrs)
        self._loop.add_toxic(state)
        return EmbeddedToxic(self, state)

    def toxic(self, name: str) -> EmbeddedToxic:
        """The toxic called ``name``."""
        return EmbeddedToxic(self, self._loop.toxic_state(name))

    def toxics(self) -> list[EmbeddedToxic]:
        """The proxy's toxics, in the order they apply."""
        return [EmbeddedToxic(self, s) for s in self._loop.toxic_states()]

    def update_toxic(self, name: str, *, toxicity: float | None = None, **attributes: int) -> None:
        """Merge ``attributes`` into toxic ``name``'s; see :meth:`EmbeddedToxic.update`."""
        state = self._loop.toxic_state(name)
        _, _, new_toxicity, attrs = check_toxic(
            state.type,
            state.stream,
            state.toxicity if toxicity is None else toxicity,
            attributes,
            base=state.attributes,
        )
        self._loop.update_toxic(state, attrs, new_toxicity)

    def remove_toxic(self, name: str) -> None:
        """Remove toxic ``name``."""
        self._loop.remove_toxic(name)

    def reset_toxics(self) -> None:
        """Remove every toxic."""
        self._loop.remove_all_toxics()

    def disable(self) -> None:
        """Take the proxy down: close every connection and refuse new ones (``enabled=false``
        in Toxiproxy)."""
        self._loop.disable()

    def enable(self) -> None:
        """Listen again, on the same address."""
        self._loop.enable()

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
        self._loop.reset_connections()

    def set_upstream(self, upstream: tuple[str, int] | str) -> None:
        """Send new connections to ``upstream``."""
        self._loop.upstream = parse_address(upstream)

    def set_listen(self, listen: tuple[str, int] | str) -> None:
        """Listen on ``listen`` from now on (live connections stay)."""
        self._loop.move_listen(parse_address(listen, "listen"))

    def as_json(self) -> dict[str, Any]:
        """Toxiproxy's JSON shape of a proxy."""
        return {
            "name": self.name,
            "listen": format_address(self.listen),
            "upstream": format_address(self.upstream),
            "enabled": self.enabled,
            "toxics": [s.as_json() for s in self._loop.toxic_states()],
        }

    def close(self) -> None:
        """Close every connection and the listening socket, and stop the proxy's thread."""
        self._loop.close()

    def __enter__(self) -> EmbeddedProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _random_choosers() -> Callable[[str], Chooser]:
    choosers: dict[str, Chooser] = {}

    def chooser(source: str) -> Chooser:
        found = choosers.get(source)
        if found is None:
            found = choosers[source] = RandomChooser()
        return found

    return chooser
