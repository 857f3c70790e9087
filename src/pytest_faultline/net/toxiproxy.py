"""The Toxiproxy backend: the :class:`~.protocol.Proxy` API over a Toxiproxy server's HTTP API.

It talks to the server with ``urllib`` (with request timeouts, per-instance URLs, toxic
updates, and HTTP errors mapped to clear :class:`~.protocol.ProxyError` s), so it serves a real
``toxiproxy-server`` and ``faultline serve`` alike.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import quote

from .._context import EventKind
from .protocol import (
    ProxyConflict,
    ProxyError,
    ProxyNotFound,
    ProxyServerError,
    ToxicBadRequest,
    ToxiproxyUnreachable,
    UnsupportedFault,
    format_address,
    parse_address,
)
from .toxics import CONNECTION_ATTRIBUTES, EMBEDDED_ONLY

__all__ = ["RemoteProxy", "RemoteToxic", "ToxiproxyClient", "ToxiproxyUnreachable"]

REQUEST_TIMEOUT_S = 10.0
ERRORS: dict[int, type[ProxyError]] = {
    400: ToxicBadRequest,
    404: ProxyNotFound,
    409: ProxyConflict,
}
UNREACHABLE_HINT = (
    "start a Toxiproxy server there (toxiproxy-server, or 'faultline serve --port PORT', which "
    "speaks the same API), point --toxiproxy-url (or TOXIPROXY_URL) at a running one, or use "
    "--faultline-backend=embedded"
)

Recorder = Callable[[EventKind, str, str], object]


EMBEDDED_ONLY_HINT = (
    "Toxiproxy has no equivalent, so the toxiproxy backend cannot do it: run this test on the "
    "embedded backend (--faultline-backend=embedded, the default, or an EmbeddedProxy)"
)


def check_remote_toxic(type: str, attributes: dict[str, int]) -> None:
    """Refuse, before anything is sent, what only the embedded proxy does (a real Toxiproxy
    would reject the type, or silently ignore an attribute it does not know)."""
    if type in EMBEDDED_ONLY:
        raise UnsupportedFault(
            f"a {type} toxic is a fault of the embedded proxy only: {EMBEDDED_ONLY_HINT}"
        )
    limited = [key for key in CONNECTION_ATTRIBUTES if key in attributes]
    if limited:
        raise UnsupportedFault(
            f"{'/'.join(limited)}= (a toxic on some connections only) is a fault of the embedded "
            f"proxy only: {EMBEDDED_ONLY_HINT}"
        )


class ToxiproxyClient:
    """A client of one Toxiproxy server at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Environment HTTP proxies must not stand between us and a loopback API.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: object = None) -> Any:
        """Send one request; the decoded JSON answer (None when empty), or a ProxyError."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "User-Agent": "pytest-faultline"},
        )
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            raise self._error(method, path, exc.code, raw) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ToxiproxyUnreachable(
                f"cannot reach the Toxiproxy server at {self.url} ({reason}); {UNREACHABLE_HINT}"
            ) from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace").strip()

    def _error(self, method: str, path: str, status: int, raw: bytes) -> ProxyError:
        text = raw.decode("utf-8", "replace").strip()
        try:
            loaded = json.loads(text)
            message = str(loaded.get("error") or loaded.get("title") or text)
        except (ValueError, AttributeError):
            message = text
        cls = ERRORS.get(status, ProxyServerError)
        return cls(f"Toxiproxy at {self.url}: {method} {path} failed ({status}): {message}")

    def version(self) -> str:
        """The server's version."""
        answer = self.request("GET", "/version")
        if isinstance(answer, dict):
            return str(answer.get("version", answer))
        return str(answer)

    def proxies(self) -> dict[str, Any]:
        """Every proxy on the server, as Toxiproxy's JSON."""
        return self.request("GET", "/proxies")  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (of every user of the server)."""
        self.request("POST", "/reset")

    def create_proxy(
        self,
        name: str,
        upstream: tuple[str, int] | str,
        *,
        listen: tuple[str, int] | str = ("127.0.0.1", 0),
        enabled: bool = True,
        record: Recorder | None = None,
    ) -> RemoteProxy:
        """Create proxy ``name``; ``listen`` port 0 lets the server pick a free port."""
        body = {
            "name": name,
            "upstream": format_address(parse_address(upstream)),
            "listen": format_address(parse_address(listen, "listen")),
            "enabled": enabled,
        }
        return RemoteProxy(self, self.request("POST", "/proxies", body), record=record)

    def get_proxy(self, name: str) -> RemoteProxy:
        """The existing proxy ``name``."""
        return RemoteProxy(self, self.request("GET", f"/proxies/{quote(name, safe='')}"))


class RemoteToxic:
    """A toxic on a :class:`RemoteProxy`."""

    def __init__(self, proxy: RemoteProxy, data: dict[str, Any]) -> None:
        self._proxy = proxy
        self._load(data)

    def _load(self, data: dict[str, Any]) -> None:
        self.name: str = data["name"]
        self.type: str = data["type"]
        self.stream: str = data["stream"]
        self.toxicity: float = float(data.get("toxicity", 1.0))
        self._attributes: dict[str, int] = dict(data.get("attributes") or {})

    @property
    def attributes(self) -> dict[str, int]:
        """The attributes as the server last reported them."""
        return dict(self._attributes)

    def __repr__(self) -> str:
        return f"<RemoteToxic {self.name!r} {self.type} {self.stream} {self._attributes}>"

    def update(self, *, toxicity: float | None = None, **attributes: int) -> None:
        """Merge ``attributes`` into the toxic's on the server (live connections included)."""
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        self._load(self._proxy._request("POST", f"/toxics/{quote(self.name, safe='')}", body))
        self._proxy._note(f"update toxic {self.name}: {self._attributes}")

    def remove(self) -> None:
        """Delete the toxic on the server."""
        self._proxy._request("DELETE", f"/toxics/{quote(self.name, safe='')}")
        self._proxy._note(f"remove toxic {self.name}")


class RemoteProxy:
    """A proxy on a Toxiproxy server, with the same API as the embedded proxy.

    Differences, from what Toxiproxy offers: toxicity is rolled by the server (not from the
    test's seed), and :meth:`reset_connections` closes connections by disabling and enabling the
    proxy (peers see EOF, not a reset).
    """

    def __init__(
        self, client: ToxiproxyClient, data: dict[str, Any], *, record: Recorder | None = None
    ) -> None:
        self.client = client
        self._record = record
        self._closed = False
        self._load(data)

    def _load(self, data: dict[str, Any]) -> None:
        self.name: str = data["name"]
        self._listen = parse_address(data["listen"], "listen")
        self._upstream = parse_address(data["upstream"])
        self._enabled = bool(data.get("enabled", True))

    def __repr__(self) -> str:
        return (
            f"<RemoteProxy {self.name!r} {format_address(self._listen)} -> "
            f"{format_address(self._upstream)} at {self.client.url}>"
        )

    @property
    def listen(self) -> tuple[str, int]:
        """``(host, port)`` clients connect to."""
        return self._listen

    @property
    def upstream(self) -> tuple[str, int]:
        return self._upstream

    @property
    def enabled(self) -> bool:
        return self._enabled

    def _request(self, method: str, suffix: str = "", body: object = None) -> Any:
        return self.client.request(method, f"/proxies/{quote(self.name, safe='')}{suffix}", body)

    def _note(self, detail: str, kind: EventKind = EventKind.PROXY) -> None:
        if self._record is not None:
            self._record(kind, self.name, detail)

    def add_toxic(
        self,
        type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> RemoteToxic:
        """Add a toxic on the server; it acts on live connections too. The embedded proxy's own
        faults (``reply_lost``, ``refuse``, ``skip_connections=``/``connections=``) raise
        :class:`~pytest_faultline.UnsupportedFault`: Toxiproxy has no equivalent."""
        check_remote_toxic(type, attributes)
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        toxic = RemoteToxic(self, self._request("POST", "/toxics", body))
        self._note(f"add toxic {toxic.name}: {toxic.type} {toxic.stream} {toxic.attributes}")
        return toxic

    def toxic(self, name: str) -> RemoteToxic:
        return RemoteToxic(self, self._request("GET", f"/toxics/{quote(name, safe='')}"))

    def toxics(self) -> list[RemoteToxic]:
        return [RemoteToxic(self, t) for t in self._request("GET", "/toxics")]

    def _set_enabled(self, enabled: bool) -> None:
        self._load(self._request("POST", "", {"enabled": enabled}))

    def disable(self) -> None:
        """Take the proxy down: connections closed, new ones refused."""
        self._set_enabled(False)
        self._note("proxy disabled: closed every connection", EventKind.DISCONNECT)

    def enable(self) -> None:
        self._set_enabled(True)
        self._note("proxy enabled")

    @contextmanager
    def down(self) -> Iterator[None]:
        """``with proxy.down():`` disabled inside the block, enabled after it."""
        self.disable()
        try:
            yield
        finally:
            self.enable()

    def reset_connections(self) -> None:
        """Close every live connection (Toxiproxy has no reset: disable, then enable)."""
        if self._enabled:
            self._set_enabled(False)
            self._set_enabled(True)
        self._note(
            "reset_connections: closed every connection (disable + enable)", EventKind.DISCONNECT
        )

    def close(self) -> None:
        """Delete the proxy on the server."""
        if self._closed:
            return
        self._closed = True
        with suppress(ProxyNotFound):
            self._request("DELETE")
