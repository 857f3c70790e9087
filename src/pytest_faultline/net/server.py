"""``faultline serve``: the embedded fault proxy behind a Toxiproxy-compatible HTTP API.

Toxiproxy's clients (toxiproxy-python, toxiproxy-ruby, the Go client, ``curl``) and the
Toxiproxy backend of pytest-faultline work against it unchanged, where no Go binary exists.
:class:`ToxiproxyServer` also runs in-process (port 0, ``start()``, ``stop()``) for tests.
"""

from __future__ import annotations

import _thread
import ipaddress
import json
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

from .. import _raw
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

__all__ = ["TOXIPROXY_VERSION", "ToxiproxyServer", "serve"]

TOXIPROXY_VERSION = "2.12.0"  # the Toxiproxy API this server speaks
STOP_BOUND_S = 10.0


class ToxiproxyServer:
    """Toxiproxy's HTTP API on ``host:port`` (port 0: any free port), over embedded proxies.

    ``start()`` serves on a background thread; ``stop()`` stops serving and closes every
    proxy and connection. ``url`` is the API's address for clients.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, verbose: bool = False) -> None:
        self.proxies: dict[str, EmbeddedProxy] = {}
        self.verbose = verbose
        self._lock = _raw.RLock()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self
        self._stopped = _raw.RawEvent()
        self._serving = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        return f"http://{format_address(self.address)}"

    def start(self) -> ToxiproxyServer:
        """Serve on a background thread; returns self."""
        self._serving = True
        _thread.start_new_thread(self._serve, ())
        return self

    def _serve(self) -> None:
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            _raw.forget_dummy_thread()
            self._stopped.set()

    def stop(self) -> None:
        """Stop serving, then close every proxy and its connections."""
        if self._serving:
            self._serving = False
            self._httpd.shutdown()
            self._stopped.wait(STOP_BOUND_S)
        self._httpd.server_close()
        with self._lock:
            proxies, self.proxies = list(self.proxies.values()), {}
        for proxy in proxies:
            proxy.close()

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API's operations, each returning (status, JSON body) ---------------------------

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
            proxy = EmbeddedProxy(
                fields["upstream"],
                name=fields["name"],
                listen=fields["listen"],
                enabled=fields["enabled"],
            )
            self.proxies[proxy.name] = proxy
            return proxy

    def populate(self, body: object) -> list[EmbeddedProxy]:
        if isinstance(body, dict) and isinstance(body.get("proxies"), list):
            body = body["proxies"]
        if not isinstance(body, list):
            raise ToxicBadRequest("bad request body: populate takes a JSON list of proxies")
        entries = [_proxy_fields(entry) for entry in body]
        done = []
        with self._lock:
            for fields in entries:
                old = self.proxies.get(fields["name"])
                if old is not None:
                    if old.listen == fields["listen"] and old.upstream == fields["upstream"]:
                        done.append(old)
                        continue
                    del self.proxies[old.name]
                    old.close()  # replaced, as Toxiproxy does when listen or upstream differ
                done.append(self.create_proxy(fields))
        return done

    def update_proxy(self, name: str, body: object) -> EmbeddedProxy:
        if not isinstance(body, dict):
            raise ToxicBadRequest("bad request body: a proxy update is a JSON object")
        with self._lock:
            proxy = self.get(name)
            if "upstream" in body:
                proxy.set_upstream(parse_address(body["upstream"]))
            if "listen" in body:
                listen = _loopback(parse_address(body["listen"], "listen"))
                if listen != proxy.listen:
                    proxy.set_listen(listen)
            if "enabled" in body:
                if not isinstance(body["enabled"], bool):
                    raise ToxicBadRequest("bad request body: enabled must be true or false")
                if body["enabled"]:
                    proxy.enable()
                else:
                    proxy.disable()
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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the process alive
    app: ToxiproxyServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "faultline-serve"
    timeout = 30.0  # a client that sends half a request does not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            sys.stderr.write(f"faultline serve: {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        try:
            body = self._body()
            status, answer = self._route(method, parts, body)
        except ProxyError as exc:
            status, answer = exc.status, {"error": str(exc), "status": exc.status}
        except Exception as exc:  # a bug answers 500, the thread lives on
            status, answer = 500, {"error": f"internal error: {exc!r}", "status": 500}
        self._reply(status, answer)

    def _body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ToxicBadRequest(f"bad request body: {exc}") from None

    def _route(self, method: str, parts: list[str], body: object) -> tuple[int, Any]:
        app = self.server.app
        update = method in ("POST", "PATCH")
        match parts:
            case ["version"] if method == "GET":
                return 200, {"version": TOXIPROXY_VERSION}
            case ["reset"] if method == "POST":
                app.reset()
                return 204, None
            case ["populate"] if method == "POST":
                return 201, {"proxies": [p.as_json() for p in app.populate(body)]}
            case ["proxies"] if method == "GET":
                return 200, app.list_proxies()
            case ["proxies"] if method == "POST":
                return 201, app.create_proxy(body).as_json()
            case ["proxies", name] if method == "GET":
                return 200, app.get(name).as_json()
            case ["proxies", name] if update:
                return 200, app.update_proxy(name, body).as_json()
            case ["proxies", name] if method == "DELETE":
                app.delete_proxy(name)
                return 204, None
            case ["proxies", name, "toxics"] if method == "GET":
                return 200, [t.as_json() for t in app.get(name).toxics()]
            case ["proxies", name, "toxics"] if method == "POST":
                # Toxiproxy answers 200 (not 201) to a new toxic.
                return 200, app.add_toxic(name, body)
            case ["proxies", name, "toxics", toxic] if method == "GET":
                return 200, app.get(name).toxic(toxic).as_json()
            case ["proxies", name, "toxics", toxic] if update:
                return 200, app.update_toxic(name, toxic, body)
            case ["proxies", name, "toxics", toxic] if method == "DELETE":
                app.get(name).remove_toxic(toxic)
                return 204, None
        known = parts and parts[0] in ("version", "reset", "populate", "proxies")
        if known and len(parts) <= 4:
            return 405, {"error": f"method {method} not allowed on {self.path}", "status": 405}
        return 404, {"error": f"no such endpoint: {self.path}", "status": 404}

    def _reply(self, status: int, answer: Any) -> None:
        payload = b"" if answer is None else json.dumps(answer).encode() + b"\n"
        self.send_response(status, HTTPStatus(status).phrase)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)


def serve(host: str, port: int) -> int:
    """Run ``faultline serve`` until SIGINT or SIGTERM; the process exit status."""
    try:
        server = ToxiproxyServer(host, port, verbose=True)
    except OSError as exc:
        print(
            f"faultline serve: cannot listen on {format_address((host, port))}: "
            f"{exc.strerror or exc}; pick another --port, or stop what uses it",
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
