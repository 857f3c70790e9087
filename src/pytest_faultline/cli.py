"""The ``faultline`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PORT_ERROR = "must be a whole number from 0 to 65535 (0: any free port), got {!r}"


def _port(text: str) -> int:
    """``--port``: a TCP port, checked before anything starts."""
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(PORT_ERROR.format(text)) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(PORT_ERROR.format(text))
    return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faultline", description="pytest-faultline tools")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the embedded fault proxy behind a Toxiproxy-compatible HTTP API"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8474, help="API port (8474, as Toxiproxy)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            from .net.server import serve as run_server
        except ImportError:
            print(
                "faultline serve needs the network fault machinery, which this version does "
                "not have yet",
                file=sys.stderr,
            )
            return 2
        return int(run_server(args.host, args.port))
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
