"""The asyncio :class:`Client`: telefunction calls over HTTP, channels over one multiplexed
connection (SSE duplex and/or WebSocket)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from telefunc.client._channel import BroadcastChannel, Channel
from telefunc.client._connection import TRANSPORTS, Connection
from telefunc.client._http import HttpTransport, append_query
from telefunc.errors import UsageError
from telefunc.wire.serializer import parse, stringify

__all__ = ["Client", "ModuleProxy"]

CHANNEL_PREFIX = "!TelefuncChannel:"
BROADCAST_PREFIX = "!TelefuncBroadcast:"
TELEFUNC_PREFIX = "!Telefunc"


class Client:
    """A telefunc client for one server.

    ::

        async with Client("http://127.0.0.1:3000") as c:
            total = await c.call("/calc.telefunc.py", "add", 1, 2)
            chat = c.module("/chat.telefunc.py")
            ch = await chat.welcome()          # a Channel, attached on the client's connection
            ch.listen(print)
            room = await chat.join("lobby")    # a BroadcastChannel
            room.subscribe(lambda data, info: print(info["seq"], data))

    ``url`` is the server origin (or any URL on it); ``telefunc_url`` the endpoint path (or an
    absolute URL), ``/_telefunc`` by default. ``headers`` are added to every request (and to the
    channel WebSocket handshake). ``timeout`` bounds each HTTP request (seconds, ``None``: no
    limit). ``http_client`` is an ``httpx.AsyncClient`` to use instead of a private one.
    ``transports`` are the channel transports, in order of use: ``("sse", "ws")`` (the default,
    like the reference client: start on SSE, upgrade to a WebSocket when the server offers one),
    ``("ws",)`` or ``("sse",)``.

    Exceptions: :class:`~telefunc.errors.Abort` (the telefunction aborted; ``.value``),
    :class:`~telefunc.errors.ShieldValidationError` (arguments rejected),
    :class:`~telefunc.errors.RemoteCallError` (``.status``, ``.body``: 500, unknown telefunction,
    ...), :class:`~telefunc.errors.TelefuncConnectionError` (the server could not be reached).
    """

    def __init__(
        self,
        url: str,
        *,
        telefunc_url: str = "/_telefunc",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 30.0,
        http_client: Any = None,
        transports: tuple[str, ...] = ("sse", "ws"),
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"Client url must start with http:// or https://, got {url!r}")
        transports = tuple(transports)
        if not transports or len(set(transports)) != len(transports):
            raise UsageError(f"transports must name each transport once, got {transports!r}")
        if any(t not in TRANSPORTS for t in transports):
            raise UsageError(f"transports must be taken from {TRANSPORTS}, got {transports!r}")
        if transports == ("ws", "sse"):
            raise UsageError("transports ('ws', 'sse'): there is no downgrade; use ('sse', 'ws')")
        #: The channel transports (see the class docstring).
        self.transports = transports
        self.endpoint = urljoin(url, telefunc_url)
        self.headers = dict(headers or {})
        self._http = HttpTransport(self.endpoint, self.headers, timeout, http_client)
        self._connection: Connection | None = None
        self._closed = False

    # ── lifecycle ───────────────────────────────────────────────────────

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the channel connection (its channels end) and the HTTP client."""
        if self._closed:
            return
        self._closed = True
        if self._connection is not None:
            await self._connection.aclose()
        await self._http.aclose()

    @property
    def session_token(self) -> str | None:
        """The server's latest ``x-telefunc-session`` token (``None`` unless it sent one)."""
        return self._http.session_token

    @property
    def connection(self) -> Connection | None:
        """The channel connection, once a call returned a channel."""
        return self._connection

    # ── calls ───────────────────────────────────────────────────────────

    async def call(self, file: str, name: str, *args: Any) -> Any:
        """Call telefunction ``name`` of ``file`` (e.g. ``"/chat.telefunc.py"``) with ``args``.

        Arguments and the result travel with the json-serializer codec; channels in the result
        come back as :class:`~telefunc.client.Channel` objects.
        """
        if self._closed:
            raise UsageError("this Client is closed")
        body = stringify({"file": file, "name": name, "args": list(args)})
        text = await self._http.call(file, name, body)
        return self._revive(text, file, name)

    def module(self, file: str) -> ModuleProxy:
        """A proxy whose attributes call the telefunctions of ``file``: ``m.add(1, 2)``."""
        return ModuleProxy(self, file)

    def _revive(self, text: str, file: str, name: str) -> Any:
        revived: dict[str, Any] = {}

        def reviver(s: str) -> tuple[bool, Any]:
            if not s.startswith(TELEFUNC_PREFIX):
                return False, None
            if s in revived:  # the same object referenced twice is one object here too
                return True, revived[s]
            if s.startswith(CHANNEL_PREFIX):
                meta = json.loads(s[len(CHANNEL_PREFIX) :])
                value: Any = Channel(
                    self._get_connection(), str(meta["channelId"]), bool(meta.get("ack", False))
                )
            elif s.startswith(BROADCAST_PREFIX):
                meta = json.loads(s[len(BROADCAST_PREFIX) :])
                value = BroadcastChannel(
                    self._get_connection(), str(meta["channelId"]), str(meta["key"])
                )
            else:
                kind = s[1 : s.index(":")] if ":" in s else s[1:]
                raise UsageError(
                    f"{name}() of {file} returned a {kind} value, which the Python client "
                    "does not support yet"
                )
            revived[s] = value
            return True, value

        try:
            result = parse(text, reviver=reviver)
        except ValueError as exc:
            raise UsageError(f"{name}() of {file}: unreadable response {text[:200]!r}") from exc
        if not isinstance(result, dict) or "ret" not in result:
            raise UsageError(f"{name}() of {file}: the response has no 'ret': {text[:200]!r}")
        return result["ret"]

    # ── channels ────────────────────────────────────────────────────────

    def _get_connection(self) -> Connection:
        if self._connection is None:
            self._connection = Connection(
                self._ws_url,
                self.headers,
                transports=self.transports,
                http=self._http.client,
                sse_url=self._sse_url,
                sse_headers=self._http.request_headers,
            )
        return self._connection

    def _sse_url(self) -> str:
        url = self.endpoint
        token = self._http.session_token
        if token:
            url = append_query(url, "session", token)
        return append_query(url, "_telefunc", "sse")

    def _ws_url(self) -> str:
        parts = urlsplit(self.endpoint)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
        token = self._http.session_token
        return append_query(url, "session", token) if token else url


class ModuleProxy:
    """The telefunctions of one file as awaitable methods (see :meth:`Client.module`)."""

    def __init__(self, client: Client, file: str) -> None:
        self._client = client
        self._file = file

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        client, file = self._client, self._file

        async def call(*args: Any) -> Any:
            return await client.call(file, name, *args)

        call.__name__ = name
        call.__qualname__ = f"{file}:{name}"
        return call

    def __repr__(self) -> str:
        return f"<telefunc module {self._file} at {self._client.endpoint}>"
