"""``faultline serve``: the embedded fault proxy behind a Toxiproxy-compatible HTTP API.

Toxiproxy's clients (toxiproxy-python, toxiproxy-ruby, the Go client, ``curl``) and the
Toxiproxy backend of pytest-faultline work against it unchanged, where no Go binary exists.
:class:`ToxiproxyServer` also runs in-process (port 0, ``start()``, ``stop()``) for tests.
The HTTP layer (limits, deadlines, keep-alive, bounded threads) is in :mod:`._http`.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import signal
import socket
import sys
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

from .. import _raw
from ._http import HTTPServer, Limits, Request, Response, error_response, json_response
from .address import PORT_ERROR
from .protocol import (
    ProxyConflict,
    ProxyError,
    ProxyNotFound,
    ToxicBadRequest,
    format_address,
    parse_address,
)
from .proxy import EmbeddedProxy
from .toxics import check_toxic

__all__ = ["TOXIPROXY_VERSION", "Limits", "ToxiproxyServer", "serve"]

TOXIPROXY_VERSION = "2.12.0"  # the Toxiproxy API this server speaks
STOP_BOUND_S = 10.0
BROWSER_PREFIX = "Mozilla/"
BROWSER_REFUSED = (
    "User agent not allowed: faultline serve refuses browsers (a User-Agent starting with "
    "'Mozilla/'), as Toxiproxy does, so that no web page can drive it; send another User-Agent"
)

# The API's routes: the methods each path shape allows (as Toxiproxy's router: HEAD is not
# among them, and a known path with another method answers 405).
_ROUTES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("version",): ("GET",),
    ("reset",): ("POST",),
    ("populate",): ("POST",),
    ("proxies",): ("GET", "POST"),
    ("proxies", "*"): ("GET", "POST", "PATCH", "DELETE"),
    ("proxies", "*", "toxics"): ("GET", "POST"),
    ("proxies", "*", "toxics", "*"): ("GET", "POST", "PATCH", "DELETE"),
}


class ToxiproxyServer:
    """Toxiproxy's HTTP API on ``host:port`` (port 0: any free port), over embedded proxies.

    ``start()`` serves on a background thread; ``stop()`` stops serving and closes every
    proxy and connection. ``url`` is the API's address for clients. ``limits`` bounds request
    sizes, deadlines, handler threads and connections (see :class:`Limits`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self.proxies: dict[str, EmbeddedProxy] = {}
        self.verbose = verbose
        self._lock = _raw.RLock()
        self._http = HTTPServer((host, port), self._handle, limits=limits, log=self._log)
        self._serving = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._http.address
        return str(host), int(port)

    @property
    def url(self) -> str:
        return f"http://{format_address(self.address)}"

    @property
    def limits(self) -> Limits:
        return self._http.limits

    def start(self) -> ToxiproxyServer:
        """Serve on a background thread; returns self. Once: a second call (``with
        ToxiproxyServer().start() as api`` makes one) does nothing; a stopped server cannot
        start again (:class:`FaultlineError`)."""
        self._serving = True
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop serving, then close every proxy and its connections."""
        self._serving = False
        self._http.stop(STOP_BOUND_S)
        with self._lock:
            proxies, self.proxies = list(self.proxies.values()), {}
        for proxy in proxies:
            proxy.close()

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, message: str) -> None:
        if self.verbose:
            sys.stderr.write(f"faultline serve: {message}\n")
            sys.stderr.flush()

    # -- the API's operations ---------------------------------------------------------------

    def list_proxies(self) -> dict[str, Any]:
        with self._lock:
            return {name: p.as_json() for name, p in self.proxies.items()}

    def get(self, name: str) -> EmbeddedProxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ProxyNotFound(f"proxy not found: {name!r}")
        return proxy

    def create_proxy(self, body: object) -> EmbeddedProxy:
        fields = _proxy_fields(body)
        with self._lock:
            if fields["name"] in self.proxies:
                raise ProxyConflict(f"proxy already exists: {fields['name']!r}")
            return self._add(fields)

    def _add(self, fields: dict[str, Any]) -> EmbeddedProxy:
        proxy = EmbeddedProxy(
            fields["upstream"],
            name=fields["name"],
            listen=fields["listen"],
            enabled=fields["enabled"],
        )
        self.proxies[proxy.name] = proxy
        return proxy

    def populate(self, body: object) -> list[EmbeddedProxy]:
        """Create or replace a list of proxies, all or nothing: every entry is checked before
        any proxy changes, and if one cannot listen, the proxies are put back as they were."""
        if isinstance(body, dict) and isinstance(body.get("proxies"), list):
            body = body["proxies"]
        if not isinstance(body, list):
            raise ToxicBadRequest("bad request body: populate takes a JSON list of proxies")
        entries = []
        for number, entry in enumerate(body, 1):
            try:
                entries.append(_proxy_fields(entry))
            except ToxicBadRequest as exc:
                raise ToxicBadRequest(f"{exc} at proxy {number}") from None
        names = [fields["name"] for fields in entries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ToxicBadRequest(
                f"duplicate proxy name {duplicates[0]!r} in populate: give each proxy one entry"
            )
        done: list[EmbeddedProxy] = []
        created: list[EmbeddedProxy] = []
        replaced: list[dict[str, Any]] = []
        with self._lock:
            try:
                for fields in entries:
                    old = self.proxies.get(fields["name"])
                    if old is not None:
                        if old.listen == fields["listen"] and old.upstream == fields["upstream"]:
                            done.append(old)
                            continue
                        # Replaced, as Toxiproxy does when listen or upstream differ.
                        replaced.append(old.as_json())
                        del self.proxies[old.name]
                        old.close()
                    proxy = self._add(fields)
                    created.append(proxy)
                    done.append(proxy)
            except ProxyError:
                self._restore(created, replaced)
                raise
        return done

    def _restore(self, created: list[EmbeddedProxy], replaced: list[dict[str, Any]]) -> None:
        for proxy in created:
            del self.proxies[proxy.name]
            proxy.close()
        for snapshot in replaced:
            proxy = self._add(
                {
                    "name": snapshot["name"],
                    "upstream": parse_address(snapshot["upstream"]),
                    "listen": parse_address(snapshot["listen"], "listen"),
                    "enabled": snapshot["enabled"],
                }
            )
            for toxic in snapshot["toxics"]:
                proxy.add_toxic(
                    toxic["type"],
                    stream=toxic["stream"],
                    toxicity=toxic["toxicity"],
                    name=toxic["name"],
                    **toxic["attributes"],
                )

    def update_proxy(self, name: str, body: object) -> EmbeddedProxy:
        """Change ``upstream``, ``listen`` and ``enabled``, all or nothing: every field is
        checked first, and a listen address that cannot be bound leaves the proxy as it was."""
        if not isinstance(body, dict):
            raise ToxicBadRequest("bad request body: a proxy update is a JSON object")
        with self._lock:
            proxy = self.get(name)
            upstream = parse_address(body["upstream"]) if "upstream" in body else None
            listen = None
            if "listen" in body:
                listen = _loopback(parse_address(body["listen"], "listen"))
            enabled = body.get("enabled")
            if "enabled" in body and not isinstance(enabled, bool):
                raise ToxicBadRequest("bad request body: enabled must be true or false")
            old_listen = proxy.listen
            if listen is not None and listen != old_listen:
                proxy.set_listen(listen)  # on failure it stays where it was
            if enabled is not None and enabled != proxy.enabled:
                try:
                    proxy.enable() if enabled else proxy.disable()
                except ProxyError:
                    if proxy.listen != old_listen:
                        proxy.set_listen(old_listen)
                    raise
            if upstream is not None:
                proxy.set_upstream(upstream)
            return proxy

    def delete_proxy(self, name: str) -> None:
        with self._lock:
            proxy = self.get(name)
            del self.proxies[name]
        proxy.close()

    def add_toxic(self, name: str, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ToxicBadRequest("bad request body: a toxic is a JSON object")
        proxy = self.get(name)
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ToxicBadRequest("bad request body: attributes must be a JSON object")
        type_, stream, toxicity, attrs = check_toxic(
            body.get("type"),
            body.get("stream", "downstream") or "downstream",
            body.get("toxicity", 1.0),
            attributes,
        )
        toxic_name = body.get("name") or f"{type_}_{stream}"
        if not isinstance(toxic_name, str):
            raise ToxicBadRequest("bad request body: a toxic's name must be a string")
        toxic = proxy.add_toxic(type_, stream=stream, toxicity=toxicity, name=toxic_name, **attrs)
        return toxic.as_json()

    def update_toxic(self, name: str, toxic_name: str, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ToxicBadRequest("bad request body: a toxic update is a JSON object")
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ToxicBadRequest("bad request body: attributes must be a JSON object")
        proxy = self.get(name)
        proxy.update_toxic(toxic_name, toxicity=body.get("toxicity"), **attributes)
        return proxy.toxic(toxic_name).as_json()

    def reset(self) -> None:
        with self._lock:
            proxies = list(self.proxies.values())
        for proxy in proxies:
            proxy.enable()
            proxy.reset_toxics()

    # -- HTTP ---------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        """One request (on a handler thread): route it, answer Toxiproxy's codes and JSON."""
        if request.headers.get("user-agent", "").startswith(BROWSER_PREFIX):
            return error_response(403, BROWSER_REFUSED)
        path = urlsplit(request.target).path
        parts = [unquote(p) for p in path.strip("/").split("/")]
        allowed = _allowed(parts)
        if allowed is None:
            return error_response(404, f"no such endpoint: {path}")
        if request.method not in allowed:
            response = error_response(
                405, f"method {request.method} not allowed on {path}; use {', '.join(allowed)}"
            )
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        try:
            status, answer = self._route(request.method, parts, _json_body(request.body))
        except ProxyError as exc:
            return error_response(exc.status, str(exc))
        return json_response(status, answer)

    def _route(self, method: str, parts: list[str], body: object) -> tuple[int, Any]:
        match parts, method:
            case ["version"], _:
                return 200, {"version": TOXIPROXY_VERSION}
            case ["reset"], _:
                self.reset()
                return 204, None
            case ["populate"], _:
                return 201, {"proxies": [p.as_json() for p in self.populate(body)]}
            case ["proxies"], "GET":
                return 200, self.list_proxies()
            case ["proxies"], _:
                return 201, self.create_proxy(body).as_json()
            case ["proxies", name], "GET":
                return 200, self.get(name).as_json()
            case ["proxies", name], "DELETE":
                self.delete_proxy(name)
                return 204, None
            case ["proxies", name], _:
                return 200, self.update_proxy(name, body).as_json()
            case ["proxies", name, "toxics"], "GET":
                return 200, [t.as_json() for t in self.get(name).toxics()]
            case ["proxies", name, "toxics"], _:
                # Toxiproxy answers 200 (not 201) to a new toxic.
                return 200, self.add_toxic(name, body)
            case ["proxies", name, "toxics", toxic], "GET":
                return 200, self.get(name).toxic(toxic).as_json()
            case ["proxies", name, "toxics", toxic], "DELETE":
                self.get(name).remove_toxic(toxic)
                return 204, None
            case ["proxies", name, "toxics", toxic], _:
                return 200, self.update_toxic(name, toxic, body)
        raise AssertionError(f"no route for {method} {parts}")  # pragma: no cover - _ROUTES


def _allowed(parts: list[str]) -> tuple[str, ...] | None:
    for shape, methods in _ROUTES.items():
        if len(shape) == len(parts) and all(
            s in ("*", p) for s, p in zip(shape, parts, strict=True)
        ):
            return methods
    return None


def _json_body(raw: bytes) -> object:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ToxicBadRequest(f"bad request body: {exc}") from None


def _proxy_fields(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ToxicBadRequest("bad request body: a proxy is a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ToxicBadRequest("missing required field: name")
    if not body.get("upstream"):
        raise ToxicBadRequest("missing required field: upstream")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ToxicBadRequest("bad request body: enabled must be true or false")
    return {
        "name": name,
        "upstream": parse_address(body["upstream"]),
        "listen": _loopback(parse_address(body.get("listen") or "127.0.0.1:0", "listen")),
        "enabled": enabled,
    }


def _loopback(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    if host == "localhost":
        return "127.0.0.1", port
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ToxicBadRequest(
            f"listen address {format_address(address)} is not a loopback address: faultline "
            f"serve binds proxies to loopback only; use 127.0.0.1:{port}"
        )
    return address


def check_listen_address(host: str, port: object) -> str | None:
    """What is wrong with ``--host``/``--port`` before anything is bound, or None."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        return f"--port {PORT_ERROR.format(port)}"
    if not host.strip():
        return "--host is empty; give an address such as 127.0.0.1 (0.0.0.0 for every interface)"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return (
                f"--host {host!r} is not an address: give the host alone (127.0.0.1) and "
                f"the port with --port"
            )
    return None


def serve(host: str, port: int) -> int:
    """Run ``faultline serve`` until SIGINT or SIGTERM; the process exit status (2: a bad
    ``--host`` or ``--port``; 1: the address cannot be used now, e.g. the port is taken)."""
    problem = check_listen_address(host, port)
    if problem is not None:
        print(f"faultline serve: {problem}", file=sys.stderr)
        return 2
    host = host.strip("[]")
    try:
        server = ToxiproxyServer(host, port, verbose=True)
    except OSError as exc:
        where = format_address((host, port))
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            print(
                f"faultline serve: cannot listen on {where}: {exc.strerror or exc}; --host must "
                f"be an address of this machine (127.0.0.1, or 0.0.0.0 for every interface)",
                file=sys.stderr,
            )
            return 2
        print(
            f"faultline serve: cannot listen on {where}: {exc.strerror or exc}; pick another "
            f"--port, or stop what uses it",
            file=sys.stderr,
        )
        return 1
    stop = _raw.RawEvent()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(
            f"faultline serve: Toxiproxy {TOXIPROXY_VERSION} API on {server.url} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.2):  # short waits: signal handlers run between them
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("faultline serve: stopped", file=sys.stderr, flush=True)
    return 0
