"""The telefunction call endpoint, independent of any HTTP server (docs/protocol.md §5).

An adapter (ASGI, Cloudflare) works out the request kind, hands the body over as a
:class:`~telefunc.server.files.BodyReader`, and writes back the :class:`RpcResponse`, whose
statuses and bodies are exactly telefunc@0.2.23's (plus 413 for a body over ``config.limits``).
Client mistakes (400, 413, 422) log one rate-limited line, never a traceback; the limits come
from a snapshot of the app's ``limits`` (its hub's settings) taken per request.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from telefunc.config import LimitsSettings, config
from telefunc.endpoint.client_errors import log_client_error
from telefunc.errors import (
    Abort,
    BodyTooLarge,
    MalformedBody,
    ProtocolError,
    ShieldValidationError,
    UsageError,
)
from telefunc.server import observe
from telefunc.server.bugs import TELEFUNCTION_EXTRA, report_bug
from telefunc.server.channel import Channel
from telefunc.server.channel_shield import attach_return_shield
from telefunc.server.context import CURRENT_SCOPE, CallScope
from telefunc.server.files import BodyReader, FileBody, UploadedFile
from telefunc.server.functions import RemoteFunction, expose_function, is_function
from telefunc.server.registry import Registry, Telefunction
from telefunc.server.request_body import (
    BoundedBody,
    parse_content_length,
)
from telefunc.server.shield import validate_call
from telefunc.server.stream_channel import ChannelByteStream, ResponseAbort, pump_to_channel
from telefunc.server.streaming import (
    STREAMING_HEADERS,
    BodyStream,
    InlineBody,
    StreamCollector,
    content_type_for,
    resolve_transport,
)
from telefunc.wire import placeholders
from telefunc.wire.placeholders import BINARY_INLINE, CHANNEL, FUNCTION_PREFIX, STREAM_PREFIX
from telefunc.wire.serializer import parse, stringify

__all__ = [
    "MALFORMED",
    "TOO_LARGE",
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
TOO_LARGE = "Content Too Large"
INTERNAL_ERROR = "Internal Server Error"
#: The ``CallScope.extras`` slot naming the call's telefunction for :mod:`telefunc.server.observe`.
CALL_LABEL = "telefunc.telefunction"


@dataclass(slots=True)
class RpcResponse:
    """What to answer: status, body, content type and extra headers (not to be changed once
    built; not frozen, as a frozen dataclass costs a call per field to build).

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
    if query_value is None and header_value is None:
        return None  # the official client's plain calls
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


def placeholder_replacer(
    scope: CallScope,
    *,
    response_abort: ResponseAbort | None = None,
    spawned: list[Channel[Any, Any]] | None = None,
    where: str = "a telefunction",
) -> Callable[[Any], str | None]:
    """A serializer replacer turning telefunc objects (channels, functions) into placeholders.

    A function becomes a ``!TelefuncFunction:`` on a new ack channel (the same function twice:
    one channel); the channels it opens are appended to ``spawned``. A response-wide abort
    (``response_abort``) aborts returned channels and functions.
    """
    functions: dict[int, tuple[str, Any]] = {}

    def replace(value: Any) -> str | None:
        if isinstance(value, type):
            return None
        to_placeholder = getattr(value, "__telefunc_placeholder__", None)
        if to_placeholder is not None:
            result: str = to_placeholder(scope)
            if response_abort is not None and isinstance(value, Channel):
                response_abort.on_abort(_aborter(value))
            return result
        if not is_function(value):
            return None
        known = functions.get(id(value))
        if known is not None:
            return known[0]
        if scope.hub is None:
            raise UsageError("returning a function needs channels, which this server lacks")
        placeholder, channel = expose_function(
            value, scope=scope, response_abort=response_abort, where=where
        )
        functions[id(value)] = (placeholder, value)  # keeps `value` alive: ids stay unique
        if spawned is not None:
            spawned.append(channel)
        return placeholder

    return replace


def _aborter(channel: Channel[Any, Any]) -> Callable[[Abort], None]:
    return lambda error: channel.abort(error.value)


class _RequestValues:
    """The channels a call's arguments opened (byte streams and functions from the client).

    A reviver for the request body: ``!TelefuncStream:`` becomes a :class:`ChannelByteStream`,
    ``!TelefuncFunction:`` a :class:`RemoteFunction`, each on a channel registered under the
    client's id (and in a ``bin`` request ``!TelefuncFile:`` / ``!TelefuncBlob:`` an
    :class:`UploadedFile`). Every channel holds the call's scope until it closes.
    """

    __slots__ = (
        "channel_ids",
        "channels",
        "files",
        "max_placeholders",
        "placeholders",
        "revivers",
        "scope",
    )

    def __init__(self, scope: CallScope, files: FileBody | None, max_placeholders: int) -> None:
        self.scope = scope
        self.files = files
        self.channels: list[Channel[Any, Any]] = []
        self.channel_ids: set[str] = set()
        self.max_placeholders = max_placeholders
        self.placeholders = 0
        #: The placeholders a client may send (files only in a ``bin`` request); built for the
        #: first one, as most calls carry none.
        self.revivers: dict[str, Callable[[str], Any]] | None = None

    def revive(self, text: str) -> tuple[bool, Any]:
        if not text.startswith(placeholders.MARK):
            return False, None
        self.placeholders += 1
        if self.placeholders > self.max_placeholders:
            raise ProtocolError(f"more than {self.max_placeholders} placeholders in a call")
        revivers = self.revivers
        if revivers is None:
            revivers = self.revivers = {
                STREAM_PREFIX: self._byte_stream,
                FUNCTION_PREFIX: self._function,
            }
            if self.files is not None:
                revivers.update(self.files.revivers())
        return placeholders.revive(revivers, text)

    def _byte_stream(self, meta_text: str) -> ChannelByteStream:
        return ChannelByteStream(self._channel(meta_text, ack=False))

    def _function(self, meta_text: str) -> RemoteFunction:
        return RemoteFunction(self._channel(meta_text, ack=True))

    def _channel(self, meta_text: str, *, ack: bool) -> Channel[Any, Any]:
        try:
            meta = json.loads(meta_text)
        except RecursionError as exc:
            raise ProtocolError("a request channel placeholder nested too deeply") from exc
        channel_id = meta.get("channelId") if isinstance(meta, dict) else None
        if not isinstance(channel_id, str) or not channel_id:
            raise ProtocolError("a request channel placeholder without a channelId")
        hub = self.scope.hub
        if hub is None:
            raise ProtocolError("a request channel, but this server serves no channels")
        if channel_id in hub.mux.channels or channel_id in self.channel_ids:
            raise ProtocolError(f"the request channel id {channel_id[:64]!r} is already in use")
        self.channel_ids.add(channel_id)
        channel: Channel[Any, Any] = Channel(ack, id=channel_id)
        hub.register(channel)
        release = self.scope.hold()
        channel.on_close(lambda _error: release())
        self.channels.append(channel)
        return channel

    def watch(self, response_abort: ResponseAbort) -> None:
        """Abort the argument channels when the response aborts."""
        for channel in self.channels:
            response_abort.on_abort(_aborter(channel))

    def close(self, abort: Abort | None = None) -> None:
        """The call failed: close (or abort) every argument channel now."""
        for channel in self.channels:
            if abort is not None:
                channel.abort(abort.value)
            elif not channel.is_closed:
                channel.close()


#: How much of a client-supplied reason a log line quotes.
_REASON_CHARS = 200


def malformed(reason: str) -> RpcResponse:
    """Log (rate-limited) why a request is malformed and build the fixed 400 answer."""
    log_client_error("malformed-body", "telefunc: malformed request: %s", reason[:_REASON_CHARS])
    return RpcResponse.text(400, MALFORMED)


def too_large(reason: str) -> RpcResponse:
    """Log (rate-limited) an over-large body and build the 413 answer."""
    log_client_error("body-too-large", "telefunc: request refused: %s", reason[:_REASON_CHARS])
    observe.sink.limit_hit("body-too-large")
    return RpcResponse.text(413, TOO_LARGE)


def body_limit(kind: str | None, limits: LimitsSettings) -> int:
    """The most bytes a call body of ``kind`` may have: uploads (``bin``) have their own."""
    return limits.max_upload_size if kind == "bin" else limits.max_body_size


async def handle_call(
    registry: Registry,
    *,
    method: str,
    kind: str | None,
    body: BodyReader,
    hub: Any = None,
    context: Mapping[str, Any] | None = None,
    content_length: str | None = None,
) -> RpcResponse:
    """Run one telefunction call (kinds ``txt``/``bin``) and build its response.

    ``context`` is what the app's context factory built for this request; ``hub`` is the app's
    channel hub, handed to objects that serialize themselves into placeholders, and whose
    ``settings`` apply (the global ``config`` without a hub);
    ``content_length`` is the request's ``Content-Length`` header when it has one (a body that
    announces more than the limit is refused before any of it is read).
    """
    if method != "POST" and method != "post":
        return malformed(f"method {method[:16]} instead of POST")
    if kind is not None and kind != "txt" and kind != "bin":
        return malformed(f"request kind {kind!r} on the call endpoint")
    settings = hub.settings if hub is not None else config
    limits = settings.limits.snapshot()
    limit = body_limit(kind, limits)
    if content_length is not None:
        try:
            announced = parse_content_length(content_length)
        except MalformedBody as exc:
            return malformed(str(exc))
        if announced is not None and announced > limit:
            return too_large(f"a body of {announced} bytes (the limit is {limit})")
    scope = CallScope(hub, context)
    # Timing only for a sink that records it (the default one does nothing).
    timed = observe.observing
    started = time.perf_counter() if timed else 0.0
    try:
        response = await _parse_and_run(registry, kind, BoundedBody(body, limit), scope, limits)
    finally:
        scope.finish_request()
    if timed:
        label = scope.extras.get(CALL_LABEL, observe.UNKNOWN)
        observe.sink.call_finished(label, response.status, time.perf_counter() - started)
    return response


async def _parse_and_run(
    registry: Registry,
    kind: str | None,
    body: BodyReader,
    scope: CallScope,
    limits: LimitsSettings,
) -> RpcResponse:
    files: FileBody | None = None
    request_values: _RequestValues | None = None
    try:
        if kind == "bin":
            files = FileBody(
                body,
                max_metadata=limits.max_body_size,
                max_upload=limits.max_upload_size,
                max_files=limits.max_placeholders,
            )
            text = await files.read_metadata()
        else:
            text = (await body.read()).decode("utf-8")
        request_values = _RequestValues(scope, files, limits.max_placeholders)
        try:
            envelope = parse(text, reviver=request_values.revive, max_depth=limits.max_depth)
        finally:
            # The table holds bound methods of request_values: a cycle only a full GC frees.
            request_values.revivers = None
    except BodyTooLarge as exc:
        if request_values is not None:
            request_values.close()
        return too_large(str(exc))
    except (ValueError, TypeError, ProtocolError) as exc:
        if request_values is not None:
            request_values.close()
        return malformed(f"body could not be parsed: {exc}")
    if not (
        isinstance(envelope, dict)
        and isinstance(envelope.get("file"), str)
        and isinstance(envelope.get("name"), str)
        and isinstance(envelope.get("args"), list)
    ):
        request_values.close()
        return malformed("body is not {file, name, args}")
    telefunction = registry.get((envelope["file"], envelope["name"]))
    if telefunction is None:
        request_values.close()
        return malformed(f"no telefunction {envelope['name']}() in {envelope['file']}")
    scope.extras[CALL_LABEL] = telefunction.key  # a registry key: a bounded metrics label
    args: list[Any] = envelope["args"]
    stream_options = envelope.get("stream")
    del envelope  # the arguments' finalizers (closing their channels) need the last reference
    response_abort = ResponseAbort()
    if request_values.channels:
        request_values.watch(response_abort)
    response = await _run(telefunction, args, scope, stream_options, response_abort)
    if response.status != 200:
        request_values.close(response_abort.error)
    return response


class _ResultValues:
    """The replacer of a call's result: streaming values (a :class:`StreamCollector`), then
    channels and functions (:func:`placeholder_replacer`).

    Given to ``stringify`` with ``replace_plain=False``, it is asked only about values that are
    not plain data, and builds its parts (and resolves the stream transport) for the first one:
    most results have none.
    """

    __slots__ = (
        "_fallback",
        "_replace",
        "_stream_options",
        "response_abort",
        "scope",
        "spawned",
        "streams",
        "transport",
        "where",
    )

    def __init__(
        self, scope: CallScope, stream_options: Any, response_abort: ResponseAbort, where: str
    ) -> None:
        self.scope = scope
        self.response_abort = response_abort
        self.where = where
        self._stream_options = stream_options
        #: The channels functions of the result opened.
        self.spawned: list[Channel[Any, Any]] = []
        #: ``None`` until the first value that is not plain data.
        self.streams: StreamCollector | None = None
        self.transport = BINARY_INLINE
        self._fallback: Callable[[Any], str | None] | None = None
        self._replace: Callable[[Any], str | None] | None = None

    def replace(self, value: Any) -> str | None:
        replace = self._replace
        if replace is None:
            scope = self.scope
            options = self._stream_options
            self.transport = resolve_transport(
                options.get("transport") if isinstance(options, dict) else None,
                (scope.hub.settings if scope.hub is not None else config).stream.transport,
                channels=scope.hub is not None,
            )
            self._fallback = placeholder_replacer(
                scope, response_abort=self.response_abort, spawned=self.spawned, where=self.where
            )
            self.streams = StreamCollector(channels=self.transport == CHANNEL)
            replace = self._replace = self.streams.replacer(self._fallback)
        return replace(value)

    def restart_inline(self) -> None:
        """Collect the streaming values anew, to send them inline (``binary-inline``); the
        channels and functions already met keep their placeholders."""
        self.streams = StreamCollector()
        self._replace = self.streams.replacer(self._fallback)
        self.transport = BINARY_INLINE

    def discard(self) -> None:
        """The call failed: drop the streaming values and abort the functions' channels."""
        if self.streams is not None:
            self.streams.discard()
        for channel in self.spawned:
            channel.abort(None)


async def _run(
    telefunction: Telefunction,
    args: list[Any],
    scope: CallScope,
    stream_options: Any,
    response_abort: ResponseAbort,
) -> RpcResponse:
    try:
        positional, keyword = validate_call(telefunction.func, args)
    except ShieldValidationError as exc:
        log_client_error(
            "shield-rejected",
            "telefunc: shield rejected a call of %s: %s",
            telefunction.key,
            str(exc)[:_REASON_CHARS],
        )
        return RpcResponse.text(422, SHIELD_ERROR)
    except RecursionError:  # arguments nested deeper than the shield's recursion can follow
        return malformed(f"arguments of {telefunction.key} nested too deeply to validate")
    except UsageError as exc:  # the telefunction's own signature is unusable: a server bug
        logger.exception("telefunc: cannot validate the arguments of %s", telefunction.key)
        scope.extras[TELEFUNCTION_EXTRA] = (telefunction.file, telefunction.name)
        report_bug(exc, scope, "telefunction")
        return RpcResponse.text(500, INTERNAL_ERROR)
    del args
    scope.extras[TELEFUNCTION_EXTRA] = (telefunction.file, telefunction.name)
    where = f"{telefunction.key}()"
    token = CURRENT_SCOPE.set(scope)
    values = _ResultValues(scope, stream_options, response_abort, where)
    try:
        if telefunction.is_async:
            result = await telefunction.func(*positional, **keyword)
        else:
            result = await _invoke(telefunction, positional, keyword)
        attach_return_shield(telefunction.func, result)
        del positional, keyword
        payload = stringify({"ret": result}, replacer=values.replace, replace_plain=False)
        streams = values.streams
        if (
            streams is not None
            and streams.channels
            and any(isinstance(p.value, UploadedFile) for p in streams.producers)
        ):
            # An echoed upload is read from this request's body, which ends with the HTTP
            # exchange: it must travel inline. (The fallback replacer is reused, so functions
            # and channels keep their placeholders; the values were not opened yet.)
            values.restart_inline()
            payload = stringify({"ret": result}, replacer=values.replace, replace_plain=False)
    except Abort as abort:
        response_abort.abort(abort.value)
        try:
            payload = stringify({"ret": abort.value, "abort": True})
        except Exception as exc:
            logger.exception(
                "telefunc: the Abort value of %s cannot be serialized", telefunction.key
            )
            report_bug(exc, scope, "telefunction")
            return RpcResponse.text(500, INTERNAL_ERROR)
        return RpcResponse.text(403, payload)
    except (BodyTooLarge, MalformedBody) as exc:  # an uploaded file's bytes broke the limits
        values.discard()
        if isinstance(exc, BodyTooLarge):
            return too_large(f"{telefunction.key}(): {exc}")
        return malformed(f"{telefunction.key}(): {exc}")
    except Exception as exc:
        values.discard()
        logger.exception("telefunc: telefunction %s raised", telefunction.key)
        report_bug(exc, scope, "telefunction")
        return RpcResponse.text(500, INTERNAL_ERROR)
    finally:
        CURRENT_SCOPE.reset(token)
    del result
    streams = values.streams
    if streams is None or not streams.producers:
        return RpcResponse(200, payload.encode("utf-8"))
    transport = values.transport
    if transport == CHANNEL:
        # Each value gets its own channel; the body is the plain text form.
        for producer in streams.producers:
            assert producer.channel_id is not None
            pump_to_channel(
                producer.channel_id,
                producer.open,
                scope=scope,
                response_abort=response_abort,
                where=where,
                discard=producer.discard,
            )
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
