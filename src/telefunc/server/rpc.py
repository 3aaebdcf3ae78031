"""The telefunction call endpoint (spec §5), independent of any HTTP server.

An adapter (ASGI, Cloudflare) works out the request kind, hands the body over as a
:class:`~telefunc.server.files.BodyReader`, and writes back the :class:`RpcResponse`. Statuses
and bodies are exactly telefunc@0.2.23's:

==========  =========================================  ==================================
status      body                                        when
==========  =========================================  ==================================
200         ``{"ret": <value>}``                        the telefunction returned
200         streaming body (``stream`` is set)          the result holds streaming values
403         ``{"ret": <abort value>, "abort": true}``   it raised :class:`Abort`
400         ``Malformed Telefunc Request``              bad JSON / method / kind, unknown
422         ``Shield Validation Error``                 arguments don't match the hints
500         ``Internal Server Error``                   any other exception (logged)
==========  =========================================  ==================================
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from telefunc.config import config
from telefunc.errors import Abort, ProtocolError, ShieldValidationError, UsageError
from telefunc.server.context import CallScope, reset_scope, set_scope
from telefunc.server.files import BodyReader, FileBody
from telefunc.server.registry import Registry, Telefunction
from telefunc.server.shield import validate_call
from telefunc.server.streaming import (
    STREAMING_HEADERS,
    BodyStream,
    InlineBody,
    StreamCollector,
    content_type_for,
    resolve_transport,
)
from telefunc.wire.serializer import parse, stringify

__all__ = [
    "MALFORMED",
    "RpcResponse",
    "handle_call",
    "placeholder_replacer",
    "request_kind",
]

logger = logging.getLogger("telefunc")

KIND_PARAM = "_telefunc"
KIND_HEADER = "x-telefunc-request"
KINDS = ("txt", "sse", "bin")
MISMATCH = "mismatch"

TEXT_PLAIN = "text/plain"
MALFORMED = "Malformed Telefunc Request"
SHIELD_ERROR = "Shield Validation Error"
INTERNAL_ERROR = "Internal Server Error"


@dataclass(frozen=True, slots=True)
class RpcResponse:
    """What to answer: status, body, content type and extra headers.

    When ``stream`` is set the body is streamed instead of ``body``: write each chunk of
    ``async for chunk in stream`` before asking for the next one (no Content-Length, no
    buffering), and always ``await stream.aclose()`` at the end, at once when the client
    disconnects (it cancels the streaming values and runs their cleanup).
    """

    status: int
    body: bytes
    content_type: str = TEXT_PLAIN
    headers: tuple[tuple[str, str], ...] = ()
    stream: BodyStream | None = None

    @classmethod
    def text(cls, status: int, text: str) -> RpcResponse:
        """A ``text/plain`` response."""
        return cls(status, text.encode("utf-8"))


def request_kind(query_value: str | None, header_value: str | None) -> str | None:
    """The request kind from the ``_telefunc`` query and the ``x-telefunc-request`` header.

    Returns ``"txt"``, ``"sse"``, ``"bin"``, ``None`` when neither says, or ``"mismatch"`` when
    either is unknown or the two disagree (a malformed request).
    """
    kinds = []
    for value in (query_value, header_value):
        if value is None:
            continue
        if value not in KINDS:
            return MISMATCH
        kinds.append(value)
    if len(set(kinds)) > 1:
        return MISMATCH
    return kinds[0] if kinds else None


def placeholder_replacer(scope: CallScope) -> Callable[[Any], str | None]:
    """A serializer replacer turning telefunc objects (channels, …) into their placeholders."""

    def replace(value: Any) -> str | None:
        to_placeholder = getattr(value, "__telefunc_placeholder__", None)
        if to_placeholder is None or isinstance(value, type):
            return None
        result: str = to_placeholder(scope)
        return result

    return replace


def malformed(reason: str) -> RpcResponse:
    """Log why a request is malformed and build the fixed 400 answer."""
    logger.warning("telefunc: malformed request: %s", reason)
    return RpcResponse.text(400, MALFORMED)


async def handle_call(
    registry: Registry,
    *,
    method: str,
    kind: str | None,
    body: BodyReader,
    hub: Any = None,
    context: Mapping[str, Any] | None = None,
) -> RpcResponse:
    """Run one telefunction call (kinds ``txt``/``bin``) and build its response.

    ``context`` is what the app's context factory built for this request; ``hub`` is the app's
    channel hub, handed to objects that serialize themselves into placeholders.
    """
    if method not in ("POST", "post"):
        return malformed(f"method {method} instead of POST")
    if kind not in (None, "txt", "bin"):
        return malformed(f"request kind {kind!r} on the call endpoint")
    files: FileBody | None = None
    try:
        if kind == "bin":
            files = FileBody(body)
            text = await files.read_metadata()
        else:
            text = (await body.read()).decode("utf-8")
        envelope = parse(text, reviver=files.revive if files else None)
    except (ValueError, TypeError, ProtocolError) as exc:
        return malformed(f"body could not be parsed: {exc}")
    if not (
        isinstance(envelope, dict)
        and isinstance(envelope.get("file"), str)
        and isinstance(envelope.get("name"), str)
        and isinstance(envelope.get("args"), list)
    ):
        return malformed("body is not {file, name, args}")
    telefunction = registry.get((envelope["file"], envelope["name"]))
    if telefunction is None:
        return malformed(f"no telefunction {envelope['name']}() in {envelope['file']}")
    args: list[Any] = envelope["args"]
    stream_options = envelope.get("stream")
    transport = resolve_transport(
        stream_options.get("transport") if isinstance(stream_options, dict) else None,
        config.stream.transport,
    )
    scope = CallScope(hub, context)
    try:
        return await _run(telefunction, args, scope, transport)
    finally:
        scope.finish_request()


async def _run(
    telefunction: Telefunction, args: list[Any], scope: CallScope, transport: str
) -> RpcResponse:
    try:
        positional, keyword = validate_call(telefunction.func, args)
    except ShieldValidationError as exc:
        logger.warning("telefunc: shield rejected a call of %s: %s", telefunction.key, exc)
        return RpcResponse.text(422, SHIELD_ERROR)
    except UsageError:  # the telefunction's own signature is unusable: a server bug
        logger.exception("telefunc: cannot validate the arguments of %s", telefunction.key)
        return RpcResponse.text(500, INTERNAL_ERROR)
    token = set_scope(scope)
    streams = StreamCollector()
    try:
        result = await _invoke(telefunction, positional, keyword)
        payload = stringify({"ret": result}, replacer=streams.replacer(placeholder_replacer(scope)))
    except Abort as abort:
        try:
            payload = stringify({"ret": abort.value, "abort": True})
        except Exception:
            logger.exception(
                "telefunc: the Abort value of %s cannot be serialized", telefunction.key
            )
            return RpcResponse.text(500, INTERNAL_ERROR)
        return RpcResponse.text(403, payload)
    except Exception:
        streams.discard()
        logger.exception("telefunc: telefunction %s raised", telefunction.key)
        return RpcResponse.text(500, INTERNAL_ERROR)
    finally:
        reset_scope(token)
    if not streams.producers:
        return RpcResponse.text(200, payload)
    # The body holds the scope until every streaming value has finished.
    body = InlineBody(
        payload,
        streams.producers,
        transport=transport,
        scope=scope,
        where=f"{telefunction.key}()",
    )
    return RpcResponse(
        200, b"", content_type_for(transport), headers=STREAMING_HEADERS, stream=body
    )


# Pyodide (Cloudflare Python Workers) has no threads: sync telefunctions run inline there.
_CAN_USE_THREADS = sys.platform != "emscripten"


async def _invoke(
    telefunction: Telefunction, positional: list[Any], keyword: dict[str, Any]
) -> Any:
    func = telefunction.func
    if telefunction.is_async:
        return await func(*positional, **keyword)
    if inspect.isasyncgenfunction(func):
        # Calling it only creates the generator: its body runs later, in the response body.
        return func(*positional, **keyword)
    if _CAN_USE_THREADS:
        # A blocking `def` telefunction must not stall the event loop; to_thread copies the
        # contextvars, so get_context() still works inside it.
        result = await asyncio.to_thread(func, *positional, **keyword)
    else:
        result = func(*positional, **keyword)
    if inspect.isawaitable(result):
        result = await result
    return result
