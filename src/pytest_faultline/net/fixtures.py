"""The ``fault_proxy`` fixture (registered by the plugin; light to import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from . import make_proxy

if TYPE_CHECKING:
    from .._context import FaultContext
    from .protocol import Proxy

__all__ = ["fault_proxy"]


@pytest.fixture
def fault_proxy(faultline: FaultContext) -> Callable[..., Proxy]:
    """Factory of fault proxies: ``fault_proxy(upstream, name=None) -> Proxy``.

    ``upstream`` is ``(host, port)`` or ``"host:port"``. Point the code under test at
    ``proxy.listen`` and inject Toxiproxy's toxics with ``proxy.add_toxic(type, stream=,
    toxicity=, name=, **attributes)``; ``proxy.disable()``/``enable()`` or ``with
    proxy.down():`` take it down; ``proxy.reset_connections()`` resets live connections. The
    backend comes from ``--faultline-backend`` (embedded, or toxiproxy at ``--toxiproxy-url``).
    Every proxy and connection is closed when the test ends.
    """

    def make(upstream: tuple[str, int] | str, *, name: str | None = None) -> Proxy:
        return make_proxy(faultline, upstream, name=name)

    return make
