"""The ``telefunc`` command: ``serve``, ``dev`` (``--edge`` or ``--stubs``), ``codegen``, ``top``.

This module parses arguments and starts the right part: uvicorn with the ASGI app and
:func:`telefunc.asgi.uvicorn_settings`, the edge emulator, the stub generator or the metrics
viewer. ``--allow-origin`` adds to ``config.allowed_origins``; limits come from
``config.limits``. Problems are reported as one line on stderr with exit status 2. Usage and
what each option does: ``telefunc --help`` and docs/architecture.md §5.5.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from telefunc.errors import UsageError

__all__ = ["build_app", "main"]

ROOT_ENV = "TELEFUNC_ROOT"
CONTEXT_ENV = "TELEFUNC_CONTEXT"
#: ``--allow-origin`` values, space-separated, handed to the reloaded workers.
ORIGINS_ENV = "TELEFUNC_ALLOWED_ORIGINS"
SERVER_ID_ENV = "TELEFUNC_SERVER_ID"


def _fail(message: str) -> int:
    print(f"telefunc: {message}", file=sys.stderr)
    return 2


def _load_context(root: Path, spec: str | None) -> Any:
    if spec:
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise UsageError(f"--context must look like MODULE:FUNC, got {spec!r}")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return getattr(importlib.import_module(module_name), attr)
    context_file = root / "context.py"
    if not context_file.is_file():
        return None
    module_spec = importlib.util.spec_from_file_location("telefunc_app_context", context_file)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, "context", None)


def build_app(root: str | Path, context: str | None = None) -> Any:
    """The ASGI app ``telefunc serve ROOT`` runs (raises UsageError on a bad ROOT)."""
    from telefunc.asgi import TelefuncApp
    from telefunc.server.registry import discover

    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise UsageError(f"{root} is not a folder")
    registry = discover(root_path)
    if not registry:
        raise UsageError(f"no *.telefunc.py file with a telefunction under {root}")
    return TelefuncApp(root_path, registry=registry, context=_load_context(root_path, context))


def allow_origins(origins: Sequence[str]) -> None:
    """Add ``origins`` to ``config.allowed_origins`` (UsageError naming a malformed one)."""
    from telefunc.config import config

    if origins:
        config.allowed_origins = (*config.allowed_origins, *origins)


def _reload_factory() -> Any:
    """Entry point uvicorn re-imports in each reloaded worker."""
    app = build_app(os.environ[ROOT_ENV], os.environ.get(CONTEXT_ENV) or None)
    allow_origins(os.environ.get(ORIGINS_ENV, "").split())
    return with_server_id(app, os.environ.get(SERVER_ID_ENV) or None)


def with_server_id(app: Any, server_id: str | None) -> Any:
    """``app`` wrapped in :class:`~telefunc.asgi.affinity.ServerAffinity` when ``server_id``."""
    if server_id is None:
        return app
    from telefunc.asgi.affinity import ServerAffinity

    return ServerAffinity(app, server_id)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket names its protocol; without it Nagle + delayed ACK add ~40 ms per
    # back-to-back keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening now queues early connections until uvicorn serves them, so a client that saw the
    # banner can connect at once.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


SERVER_INSTALL = "pip install 'telefunc[server]'"
"""The command that adds the server packages (uvicorn, websockets) to a bare ``telefunc``."""


def _missing_server_packages() -> str | None:
    """A one-line error when uvicorn or websockets is not installed (the core needs neither)."""
    missing = [name for name in ("uvicorn", "websockets") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"{' and '.join(missing)} not installed; the server needs them: {SERVER_INSTALL}"


#: What ``--ws``/``--http``/``--loop`` need beyond the ``server`` extra, by choice.
STACK_PACKAGES = {"wsproto": "wsproto", "httptools": "httptools", "uvloop": "uvloop"}


def _missing_stack_package(args: argparse.Namespace) -> str | None:
    """A one-line error when an explicitly chosen ``--ws``/``--http``/``--loop`` is missing."""
    for option, choice in (("--ws", args.ws), ("--http", args.http), ("--loop", args.loop)):
        package = STACK_PACKAGES.get(choice)
        if package is not None and importlib.util.find_spec(package) is None:
            return f"{option} {choice} needs {package}: pip install {package}"
    return None


def _observability(args: argparse.Namespace) -> str | None:
    """Set up ``--log-format`` and ``--metrics``; a message when that cannot be done."""
    from telefunc.logformat import configure_logging
    from telefunc.server.observe import enable_event_log

    configure_logging(args.log_format)
    enable_event_log()
    if args.metrics is None:
        return None
    if args.reload:
        return "--metrics does not combine with --reload (the app runs in a worker process)"
    try:
        from telefunc.asgi.metrics import serve_metrics
    except ImportError:
        return f"--metrics needs prometheus-client: {METRICS_INSTALL}"
    try:
        host, port = serve_metrics(args.metrics)
    except (ValueError, OSError) as exc:
        return f"--metrics {args.metrics}: {exc}"
    print(f"telefunc: metrics at http://{host}:{port}/metrics", flush=True)
    return None


METRICS_INSTALL = "pip install 'telefunc[metrics]'"


def _top(args: argparse.Namespace) -> int:
    try:
        from telefunc.top import run_top
    except ImportError:
        return _fail("telefunc top needs rich: pip install 'telefunc[top]'")
    return run_top(args.url, interval=args.interval, once=args.once)


def _serve(args: argparse.Namespace) -> int:
    missing = _missing_server_packages()
    if missing:
        return _fail(missing)
    import uvicorn

    from telefunc.asgi.uvicorn_settings import uvicorn_settings

    if args.redis:
        from telefunc.config import config

        try:
            from telefunc.broadcast.redis import RedisBroadcast
        except ImportError:  # redis-py is the `redis` extra
            return _fail("--redis needs redis-py: pip install 'telefunc[redis]'")
        config.broadcast.transport = RedisBroadcast(args.redis)
    try:
        app = with_server_id(build_app(args.root, args.context), args.server_id)
        # After the app's files ran: they may set config.allowed_origins and config.limits.
        allow_origins(args.allow_origin)
        sock = _bind(args.host, args.port)
    except UsageError as exc:
        return _fail(str(exc))
    failure = _observability(args)
    if failure is not None:
        return _fail(failure)
    missing = _missing_stack_package(args)
    if missing:
        return _fail(missing)
    settings = uvicorn_settings(
        ws_compression=args.ws_compression, ws=args.ws, http=args.http, loop=args.loop
    )
    url = f"http://{args.host}:{args.port}"
    print(
        f"telefunc: serving {len(app.registry)} telefunction(s) from {args.root} at {url}",
        flush=True,
    )
    if args.reload:
        sock.close()
        os.environ[ROOT_ENV] = str(Path(args.root).resolve())
        os.environ[CONTEXT_ENV] = args.context or ""
        os.environ[ORIGINS_ENV] = " ".join(args.allow_origin)
        os.environ[SERVER_ID_ENV] = args.server_id or ""
        uvicorn.run(
            "telefunc.cli:_reload_factory",
            factory=True,
            host=args.host,
            port=args.port,
            reload=True,
            reload_dirs=[str(Path(args.root).resolve())],
            reload_includes=["*.py"],
            log_level=args.log_level,
            **settings,
        )
        return 0
    if args.log_format == "json":  # uvicorn's own handlers would print text
        settings["log_config"] = None
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, lifespan="on", **settings)
    )
    server.run(sockets=[sock])
    return 0


def _dev(args: argparse.Namespace) -> int:
    if not args.edge:
        if args.workerd:
            return _fail(
                "--workerd runs a worker in real workerd: use `telefunc dev --edge --workerd ROOT`"
            )
        from telefunc.devloop import main_dev

        return main_dev(args.edge_argv)
    if args.workerd:
        from telefunc.testing.workerd import main_workerd

        return main_workerd(args.edge_argv)
    missing = _missing_server_packages()
    if missing:
        return _fail(missing)
    from telefunc.testing.edge_server import main_edge

    return main_edge(args.edge_argv)


def _codegen(args: argparse.Namespace) -> int:
    from telefunc.codegen import main_codegen

    if args.watch:
        try:
            from telefunc.codegen_watch import main_codegen_watch
        except ImportError as exc:  # watchfiles is the `watch` extra
            return _fail(f"--watch needs watchfiles (pip install 'telefunc[watch]'): {exc}")
        return main_codegen_watch(args.root, args.out)
    return main_codegen(args.root, args.out)


def _parser() -> argparse.ArgumentParser:
    from telefunc.asgi.uvicorn_settings import HTTP_CHOICES, LOOP_CHOICES, WS_CHOICES

    parser = argparse.ArgumentParser(prog="telefunc", description="Telefunc for Python.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the telefunctions under ROOT on uvicorn")
    serve.add_argument("root", metavar="ROOT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--reload", action="store_true", help="restart when a file changes")
    serve.add_argument("--context", metavar="MODULE:FUNC", help="the context factory")
    serve.add_argument("--redis", metavar="URL", help="share broadcast through Redis")
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="a foreign origin (scheme://host[:port]) whose pages may call; repeatable",
    )
    serve.add_argument(
        "--ws-compression",
        action="store_true",
        help="offer WebSocket permessage-deflate (off by default: it multiplies memory per byte)",
    )
    serve.add_argument(
        "--ws",
        choices=WS_CHOICES,
        default="telefunc",
        help="uvicorn WebSocket implementation; the default, telefunc (websockets-sansio with "
        "telefunc's caps), measured lightest and is the only one that caps what a client that "
        "pings and never reads makes the transport hold; the others lack that cap",
    )
    serve.add_argument(
        "--http",
        choices=HTTP_CHOICES,
        default="auto",
        help="uvicorn HTTP implementation (auto: httptools when installed, else h11; both with "
        "a request head cap)",
    )
    serve.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="event loop (auto: uvloop when installed, else asyncio)",
    )
    serve.add_argument(
        "--server-id",
        metavar="NAME",
        help="this process's name behind a load balancer (x-telefunc-server, session token)",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one object a line"
    )
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on this separate bind (off by default)",
    )
    serve.set_defaults(run=_serve)

    top = commands.add_parser("top", help="live view of a server's metrics endpoint")
    top.add_argument("url", metavar="URL", help="the metrics endpoint, e.g. http://127.0.0.1:9464")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one table and exit")
    top.set_defaults(run=_top)

    dev = commands.add_parser(
        "dev", help="serve --reload + codegen --watch (or, with --edge, the Cloudflare emulator)"
    )
    dev.add_argument("--edge", action="store_true", help="serve through the Workers/DO/KV emulator")
    dev.add_argument("--workerd", action="store_true", help="in real workerd, not the emulator")
    dev.add_argument("edge_argv", nargs=argparse.REMAINDER, metavar="ROOT [options]")
    dev.set_defaults(run=_dev)

    codegen = commands.add_parser("codegen", help="write TypeScript stubs for the telefunctions")
    codegen.add_argument("root", metavar="ROOT")
    codegen.add_argument("--out", required=True, metavar="DIR")
    codegen.add_argument("--watch", action="store_true", help="regenerate when a file changes")
    codegen.set_defaults(run=_codegen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``telefunc`` command; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except UsageError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:  # Ctrl-C: uvicorn already shut down gracefully; no traceback
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
