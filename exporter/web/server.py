"""The HTTP server: hypercorn's HTTP/1.1 protocol on one asyncio loop in a daemon thread, the WSGI app in a
bounded thread pool.

Reading requests happens on the event loop, so an idle, slow or never-finished connection holds no thread:
only a complete request reaches a worker. Every connection without a complete request (a silent socket, a
slowloris trickling its headers, a keep-alive client gone quiet, a stalled TLS handshake) is closed after
`idle_timeout`; at most `max_connections` are open at once (one more is closed as soon as it is accepted);
at most `threads` requests run the app at once. Malformed or oversized requests get hypercorn's 4xx.

With TLS, each accepted connection's handshake uses the SSLContext in force at that moment (the web config's whole
TLS section: a reload applies to the next connection); a connection made under an older context is served only while
its handshake would also pass the current one (see `TLSConnection`).

hypercorn's own `serve()` has no connection limit, so this module runs its accept loop itself around
hypercorn's per-connection `TCPServer` (hypercorn is pinned in pyproject.toml for that reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import wrap_app

from ..core import defaults
from .tls_connection import TLSConnection, TLSContexts

log = logging.getLogger("kraken_capacity_exporter.http")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]
TLS_REVISIT_SECONDS = 0.1  # how often the loop looks for a new SSLContext (an attribute read) to revisit connections


@dataclass(frozen=True)
class HttpSettings:
    """Bounds of the HTTP edge (the `--web-*` settings)."""

    idle_timeout: float = defaults.WEB_IDLE_TIMEOUT  # seconds a connection may go without a complete request (TLS too)
    max_connections: int = defaults.WEB_MAX_CONNECTIONS  # open connections at once; more are closed on accept
    threads: int = defaults.WEB_THREADS  # requests running the app at once
    max_request_head: int = 16 * 1024  # bytes of request line + headers (431 beyond)
    max_request_body: int = 64 * 1024  # bytes of body (400 beyond; every route is a GET)

    def __post_init__(self) -> None:
        if not self.idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0, got {self.idle_timeout!r}")
        if self.max_connections < 1 or self.threads < 1:
            raise ValueError("max_connections and threads must be >= 1")


def _head_size(environ: dict) -> int:
    return len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) + sum(
        len(k) + len(v) for k, v in environ.items() if k.startswith("HTTP_") and isinstance(v, str))


def _bounded(app: WSGIApp, max_head: int) -> WSGIApp:
    """431 for a request head above `max_head` bytes that arrived in one read (h11 bounds only incomplete ones)."""

    def bounded(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if _head_size(environ) > max_head:
            body = b'{"error": "request header fields too large"}'
            start_response("431 Request Header Fields Too Large", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")])
            return [body]
        return app(environ, start_response)

    return bounded


class _TCPServer(TCPServer):
    """hypercorn's connection, released as soon as the peer closes (hypercorn keeps an idle one until its timeout)."""

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()


def _head_environ(scope: dict) -> dict:
    """The WSGI environ's request line, client address and headers (no body) of an ASGI HTTP scope."""
    environ = {"REQUEST_METHOD": scope["method"], "PATH_INFO": scope["path"],
               "QUERY_STRING": scope["query_string"].decode("latin-1")}
    if scope.get("client"):
        environ["REMOTE_ADDR"] = str(scope["client"][0])
    for name, value in scope["headers"]:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value.decode('latin-1')}" if key in environ else value.decode("latin-1")
    return environ


class _AnswerOnLoop:
    """hypercorn's WSGI wrapper behind the app's `answer_on_loop(environ)`: a request that it answers (a refusal
    reached without blocking the loop, e.g. a wrong password seen before) gets that answer without a worker thread."""

    def __init__(self, wsgi: Any, answer: Callable[[dict], Awaitable[tuple[str, list[tuple[str, str]], bytes] | None]],
                 max_head: int) -> None:
        self._wsgi = wsgi
        self._answer = answer
        self._max_head = max_head

    async def __call__(self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any) -> None:
        if scope["type"] == "http":
            environ = _head_environ(scope)
            reply = await self._answer(environ) if _head_size(environ) <= self._max_head else None  # else: its 431
            if reply is not None:
                status, headers, body = reply
                await send({"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
                            "headers": [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await self._wsgi(scope, receive, send, sync_spawn, call_soon)


def _hypercorn_config(settings: HttpSettings) -> HypercornConfig:
    config = HypercornConfig()
    config.keep_alive_timeout = settings.idle_timeout  # idle: no request in flight (from accept on)
    config.read_timeout = int(max(1, settings.idle_timeout))  # a single read waiting this long ends the connection
    config.ssl_handshake_timeout = settings.idle_timeout
    config.h11_max_incomplete_size = settings.max_request_head
    config.wsgi_max_body_size = settings.max_request_body
    config.alpn_protocols = ["http/1.1"]  # one protocol, with h11's limits
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = 2.0
    return config


class RunningServer:
    """A started server: `url`, `port`, `open_connections`, and `stop()`."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host, self.port = server.address
        self.scheme = "https" if server.tls else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return self._server.open_connections

    @property
    def rejected_connections(self) -> int:
        """Connections closed on accept because `max_connections` were open."""
        return self._server.rejected

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=10)


class _Server:
    def __init__(self, app: WSGIApp, sock: socket.socket, settings: HttpSettings, tls: TLSContexts | None) -> None:
        self.settings = settings
        self.tls = tls
        self.address = sock.getsockname()[:2]
        self.rejected = 0
        self._sock = sock
        self._config = _hypercorn_config(settings)
        self._app = wrap_app(_bounded(app, settings.max_request_head), settings.max_request_body, "wsgi")
        answer = getattr(app, "answer_on_loop", None)
        if answer is not None:
            self._app = _AnswerOnLoop(self._app, answer, settings.max_request_head)
        self._connections: set[asyncio.Task] = set()
        self._tls_connections: set[TLSConnection] = set()
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(ThreadPoolExecutor(settings.threads, thread_name_prefix="exporter-http-worker"))
        self._loop.set_exception_handler(_quiet_exception_handler)
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start_server, which re-raises it in the caller's thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    def wait_ready(self) -> None:
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        context = WorkerContext(None)
        state: dict = {}

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if len(self._connections) >= self.settings.max_connections:
                self.rejected += 1
                writer.close()
                return
            sock = writer.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # headers and body leave in separate writes: without this, Nagle holds the body for the client's
                # delayed ACK (40 ms on every keep-alive request)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)  # counted from accept: a stalled TLS handshake holds a place too
            task.add_done_callback(self._connections.discard)
            if self.tls is None:
                await _TCPServer(self._app, self._loop, self._config, context, state, reader, writer)
                return
            made_with = self.tls()
            if not await self._handshake(writer, made_with):
                return
            connection = TLSConnection(self._app, writer, made_with, self.tls)
            self._tls_connections.add(connection)
            try:
                await _TCPServer(connection, self._loop, self._config, context, state, reader, writer)
            finally:
                self._tls_connections.discard(connection)

        server = await asyncio.start_server(on_connection, sock=self._sock, backlog=1024)
        revisits = asyncio.create_task(self._revisit_on_tls_change()) if self.tls is not None else None
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            if revisits is not None:
                revisits.cancel()
            await context.terminated.set()  # idle connections close now
            server.close()
            await server.wait_closed()
            if self._connections:
                await asyncio.wait(set(self._connections), timeout=self._config.graceful_timeout)
            for task in set(self._connections):
                task.cancel()


    async def _revisit_on_tls_change(self) -> None:
        """Every TLS_REVISIT_SECONDS, on a new SSLContext (a reloaded web config), revisit the open TLS connections,
        a batch at a time so the loop keeps serving."""
        assert self.tls is not None
        seen = self.tls()
        while True:
            await asyncio.sleep(TLS_REVISIT_SECONDS)
            current = self.tls()
            if current is seen:
                continue
            seen = current
            for i, connection in enumerate(list(self._tls_connections)):
                connection.revisit(current)
                if i % 100 == 99:
                    await asyncio.sleep(0)

    async def _handshake(self, writer: asyncio.StreamWriter, context: ssl.SSLContext) -> bool:
        """TLS on an accepted connection, within the idle timeout; False (and closed) when it fails."""
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self.settings.idle_timeout)
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            writer.close()
            return False
        return True


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Client-caused errors (a failed TLS handshake, a reset) are a debug line, never a traceback on the terminal."""
    exc = context.get("exception")
    if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
        log.debug("connection error: %s", exc)
        return
    log.warning("HTTP server: %s (%s)", context.get("message"), type(exc).__name__ if exc else "no exception")


def start_server(
    app: WSGIApp, host: str = "127.0.0.1", port: int = 0, *,
    settings: HttpSettings | None = None, tls: ssl.SSLContext | TLSContexts | None = None,
) -> RunningServer:
    """Serve `app` from a daemon thread; port 0 picks a free port. Raises OSError when the port is taken.

    `tls`: to serve HTTPS instead of HTTP, a server-side SSLContext, or a function returning the one in force
    (`WebConfigFile.ssl_context()`), asked for each new connection.
    When `app` has a coroutine method `answer_on_loop(environ) -> (status, headers, body) | None` (see
    `auth.Protected`), it is awaited on the event loop first, with the request's line and headers; it must not block.
    """
    settings = settings or HttpSettings()
    if isinstance(tls, ssl.SSLContext):
        fixed = tls
        tls = lambda: fixed  # noqa: E731
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    server = _Server(app, sock, settings, tls)
    thread = threading.Thread(target=server.run, name="exporter-http", daemon=True)
    thread.start()
    try:
        server.wait_ready()
    except BaseException:
        sock.close()
        raise
    return RunningServer(server, thread)
