"""Telefunction calls over HTTP (httpx): the request of telefunc@0.2.23 and its status mapping.

``POST <telefunc_url>?_telefunc=txt`` with ``x-telefunc-request: txt`` and a json-serializer body
``{"file", "name", "args"}``; the reply is ``{"ret": ...}`` (200), ``{"ret": value, "abort": true}``
(403, raised as :class:`~telefunc.errors.Abort`), ``Shield Validation Error`` (422, raised as
:class:`~telefunc.errors.ShieldValidationError`) or another status (raised as
:class:`~telefunc.errors.RemoteCallError`). A session token the server hands out in
``x-telefunc-session`` (the Cloudflare adapter does) is sent back on every later request, as that
header and as ``?session=``.

A 200 reply whose body streams (``application/octet-stream``: ``binary-inline``,
``text/event-stream``: ``sse-inline``) is handed back unread as a :class:`StreamedResponse`; its
body may pause between chunks for as long as the telefunction likes, so ``timeout`` bounds only
the wait for the headers (and the body of a plain reply).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from telefunc.errors import (
    Abort,
    RemoteCallError,
    ShieldValidationError,
    TelefuncConnectionError,
    UsageError,
)
from telefunc.wire.framing import SSE_CONTENT_TYPE
from telefunc.wire.serializer import parse

__all__ = ["SESSION_HEADER", "HttpTransport", "StreamedResponse", "append_query"]

SESSION_HEADER = "x-telefunc-session"
KIND_HEADER = "x-telefunc-request"

STATUS_BODY_MALFORMED = "Malformed Telefunc Request"
STATUS_BODY_INTERNAL = "Internal Server Error"
STATUS_BODY_SHIELD = "Shield Validation Error"


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:
        raise UsageError(
            "telefunc.client needs httpx for calls: pip install 'telefunc[client]' "
            "(or pip install httpx)"
        ) from exc
    return httpx


def append_query(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` appended to its query string."""
    return f"{url}{'&' if '?' in url else '?'}{name}={quote(value, safe='')}"


class StreamedResponse:
    """A 200 reply whose body streams: ``response`` is the open ``httpx.Response``."""

    __slots__ = ("response", "sse")

    def __init__(self, response: Any, sse: bool) -> None:
        self.response = response
        #: ``True`` for ``sse-inline`` (``text/event-stream``), else ``binary-inline``.
        self.sse = sse


class HttpTransport:
    """Makes calls to one ``telefunc_url``; remembers the server's session token."""

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str],
        timeout: float | None,
        client: Any = None,
    ) -> None:
        httpx = _httpx()
        self.endpoint = endpoint
        self.headers = dict(headers)
        #: The latest ``x-telefunc-session`` token the server sent, if any.
        self.session_token: str | None = None
        self._own_client = client is None
        self._client = (
            client if client is not None else httpx.AsyncClient(timeout=timeout, trust_env=False)
        )
        self._httpx = httpx
        # httpx's read timeout would also cut a streaming body that pauses between chunks, so
        # calls go out without one; ``timeout`` then bounds the wait for the headers and the
        # reading of a plain body, with asyncio.timeout around each.
        self._timeout = timeout
        self._call_timeout = httpx.Timeout(timeout, read=None)

    @property
    def client(self) -> Any:
        """The ``httpx.AsyncClient`` requests go through (the SSE channel transport uses it)."""
        return self._client

    def request_headers(self) -> dict[str, str]:
        """The user's headers plus the session token, if the server handed one out."""
        headers = dict(self.headers)
        if self.session_token:
            headers[SESSION_HEADER] = self.session_token
        return headers

    async def aclose(self) -> None:
        """Close the HTTP client (if this transport created it)."""
        if self._own_client:
            await self._client.aclose()

    async def call(
        self,
        file: str,
        name: str,
        body: str | AsyncIterator[bytes],
        *,
        length: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str | StreamedResponse:
        """POST one call; returns the 200 body text (or the streaming response), or raises the
        mapped exception.

        A ``str`` body is a ``txt`` request; an async iterator of ``length`` bytes is a ``bin``
        request (arguments holding files). ``headers`` are added to this request only.
        """
        url = self.endpoint
        token = self.session_token
        if token:
            url = append_query(url, "session", token)
        kind = "txt" if isinstance(body, str) else "bin"
        url = append_query(url, "_telefunc", kind)
        content_type = "text/plain" if kind == "txt" else "application/octet-stream"
        all_headers = {"content-type": content_type, KIND_HEADER: kind, **self.headers}
        if headers:
            all_headers.update(headers)
        if token:
            all_headers[SESSION_HEADER] = token
        if isinstance(body, str):
            content: Any = body.encode()
        else:
            content = body
            all_headers["content-length"] = str(length)
        request = self._client.build_request(
            "POST", url, content=content, headers=all_headers, timeout=self._call_timeout
        )
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.send(request, stream=True)
        except (self._httpx.TransportError, TimeoutError) as exc:
            raise self._unreachable(file, name, exc) from exc
        streaming = False
        try:
            new_token = response.headers.get(SESSION_HEADER)
            if new_token:
                self.session_token = new_token
            status: int = response.status_code
            content_type = response.headers.get("content-type", "")
            sse = SSE_CONTENT_TYPE in content_type
            if status == 200 and (sse or "application/octet-stream" in content_type):
                streaming = True
                return StreamedResponse(response, sse)
            try:
                async with asyncio.timeout(self._timeout):
                    await response.aread()
            except (self._httpx.TransportError, TimeoutError) as exc:
                raise self._unreachable(file, name, exc) from exc
            text: str = response.text
        finally:
            if not streaming:
                await response.aclose()
        if status == 200:
            return text
        if status == 403:
            try:
                value = parse(text)["ret"]
            except (ValueError, KeyError, TypeError):
                raise RemoteCallError(status, text) from None
            raise Abort(value, f"Aborted telefunction call {name}() ({file}).")
        if status == 422 and text == STATUS_BODY_SHIELD:
            raise ShieldValidationError(
                f"Shield Validation Error — {name}() ({file}) rejected its arguments; "
                "see server logs"
            )
        error = RemoteCallError(status, text)
        # Keep the raw body in ``.body``; say in the message what it means.
        error.args = (f"HTTP {status}: {_explain(status, text, file, name, self.endpoint)}",)
        raise error

    def _unreachable(self, file: str, name: str, exc: Exception) -> TelefuncConnectionError:
        return TelefuncConnectionError(
            f"Could not reach the telefunc server at {self.endpoint} "
            f"(calling {name}() of {file}): {exc!r}"
        )


def _explain(status: int, text: str, file: str, name: str, endpoint: str) -> str:
    if status == 500 and text == STATUS_BODY_INTERNAL:
        return f"Internal Server Error in {name}() ({file}) — see server logs"
    if status == 400 and text == STATUS_BODY_MALFORMED:
        return (
            f"Malformed Telefunc Request: the server has no telefunction {name}() in {file}, "
            "or the client and server are out of sync"
        )
    if status == 404:
        return f"Telefunc doesn't seem to be installed on the server: POST {endpoint} gave 404"
    return text
