"""Stand-in for ``pyodide.http``: ``FetchResponse`` and ``pyfetch``, which the SDK builds on.

``workers.Response`` subclasses ``pyodide.http.FetchResponse`` and ``workers.fetch`` (so a
Durable Object stub's ``fetch``) goes through ``pyfetch``. Modelled on Pyodide 0.28.2: the
response keeps the JS ``Response`` as ``js_response``; reading the body twice raises ``OSError``.
"""

from __future__ import annotations

import json
from typing import Any

from . import js_api
from .ffi import JsException, to_js

__all__ = ["FetchResponse", "pyfetch"]


class FetchResponse:
    """A JS ``Response`` seen from Python (``pyodide.http.FetchResponse``)."""

    def __init__(self, url: str, js_response: Any, abort_controller: Any = None) -> None:
        self._url = url
        self.js_response = js_response
        self.abort_controller = abort_controller

    @property
    def body_used(self) -> bool:
        """Whether the body was read."""
        return bool(self.js_response.bodyUsed)

    @property
    def headers(self) -> dict[str, str]:
        """The response headers."""
        return dict(self.js_response.headers.entries())

    @property
    def ok(self) -> bool:
        """``200 <= status < 300``."""
        return bool(self.js_response.ok)

    @property
    def redirected(self) -> bool:
        """Whether the response is the result of a redirect."""
        return bool(getattr(self.js_response, "redirected", False))

    @property
    def status(self) -> int:
        """The status code."""
        return int(self.js_response.status)

    @property
    def status_text(self) -> str:
        """The status text."""
        return str(self.js_response.statusText)

    @property
    def type(self) -> str:
        """The response type."""
        return str(getattr(self.js_response, "type", "default") or "default")

    @property
    def url(self) -> str:
        """The response URL."""
        return str(getattr(self.js_response, "url", "") or "")

    def _raise_if_failed(self) -> None:
        if self.body_used:
            raise OSError("Response body is already used")

    def raise_for_status(self) -> None:
        """Raise ``OSError`` for a 4xx/5xx status."""
        if 400 <= self.status < 600:
            raise OSError(f"{self.status} Error: {self.status_text} for url: {self.url}")

    def clone(self) -> FetchResponse:
        """A copy with its own body."""
        self._raise_if_failed()
        return FetchResponse(self._url, self.js_response.clone())

    async def buffer(self) -> Any:
        """The body as an ``ArrayBuffer`` (bytes here)."""
        self._raise_if_failed()
        return await self.js_response.arrayBuffer()

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        self._raise_if_failed()
        return str(await self.js_response.text())

    async def string(self) -> str:
        """Alias of :meth:`text`."""
        return await self.text()

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON."""
        return json.loads(await self.text(), **kwargs)

    async def bytes(self) -> bytes:
        """The whole body."""
        self._raise_if_failed()
        return bytes(await self.js_response.arrayBuffer())

    async def memoryview(self) -> memoryview:
        """The whole body as a ``memoryview``."""
        return memoryview(await self.bytes())


async def pyfetch(url: Any, /, *, fetcher: Any = None, **kwargs: Any) -> FetchResponse:
    """``fetch(url, kwargs as init)`` with ``fetcher`` (default: the global ``fetch``)."""
    fetch = fetcher if fetcher is not None else js_api.fetch
    init = to_js(kwargs, dict_converter=js_api.Object.fromEntries)
    try:
        js_response = await fetch(url, init)
    except JsException as exc:
        raise OSError(exc.message) from None
    return FetchResponse(str(getattr(url, "url", url)), js_response)
