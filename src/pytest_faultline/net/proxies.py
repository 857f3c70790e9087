"""``faultline.proxy()``: the test's proxies, on the backend the options choose.

The embedded backend makes an :class:`~.proxy.EmbeddedProxy` wired to the test: toxicity rolls,
jitter and slice sizes come from the test's seed, every injected fault is a ``FaultEvent``, the
proxy closes at the end of the test, and the ``Disconnect`` action (and the
``disconnect_mid_recycle`` scenario) resets every connection of the test's proxies. The
``toxiproxy`` backend makes the same proxies on a Toxiproxy server.
"""

from __future__ import annotations

import itertools
import os
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from .._context import EventKind, ServiceKey
from .protocol import (
    Proxy,
    ProxyConflict,
    ProxyError,
    ToxicBadRequest,
    format_address,
    parse_address,
)

if TYPE_CHECKING:
    from .._context import FaultContext
    from ..actions import Hit
    from .protocol import Chooser
    from .toxiproxy import ToxiproxyClient

__all__ = ["DEFAULT_TOXIPROXY_URL", "ProxyPool", "forget_unreachable", "make_proxy"]

DEFAULT_TOXIPROXY_URL = "http://127.0.0.1:8474"
_REMOTE_NAMES = itertools.count(1)
PROXIES: ServiceKey[ProxyPool] = ServiceKey("proxies")
NAME_ATTEMPTS = 100
# Toxiproxy URLs found unreachable in this session, with the error: the next test is told at
# once instead of waiting for another request timeout (10 s on a host that drops packets).
# The plugin clears it when a session starts.
_UNREACHABLE: dict[str, str] = {}


def forget_unreachable() -> None:
    """Forget which Toxiproxy servers were unreachable (a new session tries them again)."""
    _UNREACHABLE.clear()


def make_proxy(
    faultline: FaultContext, upstream: tuple[str, int] | str, *, name: str | None
) -> Proxy:
    """A proxy in front of ``upstream`` for the test of ``faultline``; closed at test end."""
    pool = faultline.service(PROXIES, ProxyPool)
    return pool.create(upstream, name=name)


class ProxyPool:
    """The proxies of one test, and the hooks that tie them to it."""

    def __init__(self, faultline: FaultContext) -> None:
        self.faultline = faultline
        self.backend = faultline.settings.backend
        self.url = faultline.settings.toxiproxy_url or DEFAULT_TOXIPROXY_URL
        self.proxies: dict[str, Proxy] = {}
        self.generated: list[str] = []  # the names made here, in order (the sweep counts them)
        self._client: ToxiproxyClient | None = None
        self._generated = 0
        faultline.add_handler("disconnect", self._disconnect)

    def create(self, upstream: tuple[str, int] | str, *, name: str | None) -> Proxy:
        address = parse_address(upstream)
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ToxicBadRequest(
                f"proxy name {name!r} is not usable: give a non-empty string without '/', "
                f"or leave name out for a generated one"
            )
        generated = name is None
        if name is None:
            name = self._generated_name()
        if name in self.proxies:
            raise ProxyConflict(
                f"proxy already exists: this test has a proxy named {name!r} already; give "
                f"the new one another name, or leave name out"
            )
        proxy: Any
        if self.backend == "toxiproxy":
            proxy = self._create_remote(name, address, generated=generated)
            name = proxy.name
        else:
            from .proxy import EmbeddedProxy

            proxy = EmbeddedProxy(
                address, name=name, chooser=self._chooser, record=self.faultline.record
            )
        self.proxies[name] = proxy
        if generated:
            self.generated.append(name)
        self.faultline.undo.push(proxy.close, f"close proxy {name}")
        self.faultline.record(
            EventKind.PROXY,
            name,
            f"{self.backend} proxy {format_address(proxy.listen)} -> {format_address(address)}",
        )
        return proxy  # type: ignore[no-any-return]

    def _create_remote(self, name: str, address: tuple[str, int], *, generated: bool) -> Any:
        from .toxiproxy import ToxiproxyUnreachable

        known = _UNREACHABLE.get(self.url)
        try:
            if known is not None:
                raise ToxiproxyUnreachable(f"{known} (found unreachable earlier in this session)")
            for _ in range(NAME_ATTEMPTS):
                try:
                    return self._remote().create_proxy(name, address, record=self.faultline.record)
                except ProxyConflict:
                    if not generated:
                        raise
                    # Someone on the shared server took the generated name: draw the next one.
                    name = self._generated_name()
            raise ProxyConflict(
                f"proxy name conflict: {NAME_ATTEMPTS} generated names were taken on the "
                f"Toxiproxy server at {self.url}; give the proxy a name="
            )
        except ToxiproxyUnreachable as exc:
            _UNREACHABLE.setdefault(self.url, str(exc))
            if self.faultline.settings.toxiproxy_skip_unavailable:
                import pytest

                pytest.skip(f"{exc} (skipped: --toxiproxy-skip-unavailable)")
            raise

    def _generated_name(self) -> str:
        # Never one of this test's names, whatever names the test gave its other proxies.
        while True:
            if self.backend == "toxiproxy":
                # A Toxiproxy server is shared (xdist workers, other runs): unique per process.
                name = f"faultline_{os.getpid()}_{next(_REMOTE_NAMES)}"
            else:
                self._generated += 1
                name = f"proxy{self._generated}"
            if name not in self.proxies:
                return name

    def _chooser(self, source: str) -> Chooser:
        return self.faultline.stream(f"proxy:{source}")

    def _remote(self) -> ToxiproxyClient:
        if self._client is None:
            from .toxiproxy import ToxiproxyClient

            self._client = ToxiproxyClient(self.url)
        return self._client

    def _disconnect(self, hit: Hit | None) -> None:
        for proxy in list(self.proxies.values()):
            with suppress(ProxyError):  # closed by the test already: nothing to drop
                proxy.reset_connections()
