"""The client's "SSE duplex" channel transport (docs/protocol.md §7.8): one wire of a ClientMux.

The downstream is the stream-response POST, read as an event stream for as long as the wire
lives; the upstream is one endless stream-request POST, or batch POSTs (one at a time, in order)
when STREAM_REQUEST_OPEN_ACK does not arrive within 3 s. The end of the downstream or a failed
upload is the loss of the wire; the mux reconnects, replays and deduplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from telefunc.wire.frames import Tag
from telefunc.wire.framing import SSE_CONTENT_TYPE, SseDecoder, encode_sse_metadata, length_prefixed

if TYPE_CHECKING:
    from telefunc.wire.client_mux import ClientMux, Wire

__all__ = ["STREAM_REQUEST_HANDSHAKE_TIMEOUT", "SseWireIO", "StreamRequestState"]

logger = logging.getLogger("telefunc.client")

#: Seconds the client waits for STREAM_REQUEST_OPEN_ACK before falling back to batch POSTs.
STREAM_REQUEST_HANDSHAKE_TIMEOUT = 3.0
#: Seconds to connect / for a batch POST's answer.
REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
KIND_HEADER = "x-telefunc-request"


class StreamRequestState:
    """Per connection: whether stream-request POSTs are known not to work (sticky, like the
    reference client: one failed handshake sends batch POSTs for the connection's lifetime)."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed = False


class SseWireIO:
    """The I/O of one SSE wire: the event-stream reader and the upstream sender.

    ``url`` and ``headers`` are called per request (the session token may change);
    ``now`` is the mux's clock.
    """

    kind = "sse"

    def __init__(
        self,
        mux: ClientMux,
        http: Any,
        url: Callable[[], str],
        headers: Callable[[], Mapping[str, str]],
        conn_id: str,
        stream_request: StreamRequestState,
        now: Callable[[], float],
    ) -> None:
        self._mux = mux
        self._http = http
        self._url = url
        self._headers = headers
        self._conn_id = conn_id
        self._stream_request = stream_request
        self._now = now
        self.wire: Wire | None = None
        #: Called once the wire is finished (lost or closed), to forget it.
        self.on_finished: Callable[[SseWireIO], None] | None = None
        self.closed = False
        #: ``None`` while the upstream is set up, then ``"stream"`` or ``"batch"``.
        self.mode: str | None = None
        self._response: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._pending: list[bytes] = []
        self._pending_set = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._mode_known = asyncio.Event()
        self._handshake = asyncio.Event()
        self._upload_queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._upload: asyncio.Task[int] | None = None
        self._draining = False

    # ── requests ────────────────────────────────────────────────────────

    def _request_headers(self, *, event_stream: bool = False) -> dict[str, str]:
        headers = {
            **self._headers(),
            "content-type": "application/octet-stream",
            KIND_HEADER: "sse",
        }
        if event_stream:
            headers["accept"] = SSE_CONTENT_TYPE
        return headers

    def _meta(self, *, stream_response: bool = False, stream_request: bool = False) -> bytes:
        return encode_sse_metadata(
            self._conn_id, stream_response=stream_response, stream_request=stream_request
        )

    def _timeout(self, read: float | None) -> Any:
        import httpx

        return httpx.Timeout(CONNECT_TIMEOUT, read=read, write=None, pool=CONNECT_TIMEOUT)

    async def open(self, wire: Wire, initial: list[bytes]) -> bool:
        """POST the stream-response carrying ``initial`` (the RECONCILE); ``True`` once the event
        stream is open (then the reader and the upstream run), ``False`` if refused or failed."""
        self.wire = wire
        body = length_prefixed([self._meta(stream_response=True), *initial])
        request = self._http.build_request(
            "POST",
            self._url(),
            content=body,
            headers=self._request_headers(event_stream=True),
            timeout=self._timeout(None),
        )
        try:
            response = await self._http.send(request, stream=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("telefunc: SSE stream-response POST failed: %r", exc)
            return False
        if self.closed:  # the connection was closed meanwhile
            await response.aclose()
            return False
        if response.status_code != 200:
            logger.debug("telefunc: SSE stream-response POST answered %s", response.status_code)
            await response.aclose()
            return False
        self._response = response
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(response), name="telefunc-client-sse-reader"),
            loop.create_task(self._send(), name="telefunc-client-sse-sender"),
        ]
        return True

    # ── downstream ──────────────────────────────────────────────────────

    async def _read(self, response: Any) -> None:
        decoder = SseDecoder()
        try:
            async for chunk in response.aiter_raw():
                for frame in decoder.feed(chunk):
                    if self.closed:
                        return
                    self._frame(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("telefunc: SSE event stream lost: %r", exc)
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()
        self._lost()

    def _frame(self, frame: bytes) -> None:
        if frame and frame[0] == Tag.STREAM_REQUEST_OPEN_ACK:
            self._handshake.set()
            return
        assert self.wire is not None
        self._mux.receive_from(self.wire, frame, self._now())

    # ── upstream ────────────────────────────────────────────────────────

    def enqueue(self, frames: list[bytes]) -> None:
        """Send ``frames`` (in order, after every earlier frame) on this wire's upstream."""
        if self.closed or not frames:
            return
        if self.mode == "stream":
            self._upload_queue.put_nowait(length_prefixed(frames))
            return
        self._pending.extend(frames)
        self._idle.clear()
        self._pending_set.set()

    async def _upload_body(self) -> AsyncIterator[bytes]:
        yield length_prefixed([self._meta(stream_request=True)])
        while (chunk := await self._upload_queue.get()) is not None:
            yield chunk

    async def _run_upload(self) -> int:
        response = await self._http.post(
            self._url(),
            content=self._upload_body(),
            headers=self._request_headers(),
            timeout=self._timeout(None),
        )
        status: int = response.status_code
        return status

    async def _send(self) -> None:
        if not self._stream_request.failed:
            upload = asyncio.get_running_loop().create_task(
                self._run_upload(), name="telefunc-client-sse-upload"
            )
            handshake = asyncio.ensure_future(self._handshake.wait())
            await asyncio.wait(
                {upload, handshake},
                timeout=STREAM_REQUEST_HANDSHAKE_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
            handshake.cancel()
            if self._handshake.is_set() and not upload.done():
                self._upload = upload
                self.mode = "stream"
                pending, self._pending = self._pending, []
                if pending:
                    self._upload_queue.put_nowait(length_prefixed(pending))
                self._idle.set()
                self._mode_known.set()
                upload.add_done_callback(self._upload_ended)
                return
            logger.debug("telefunc: no SSE stream-request handshake, using batch POSTs")
            self._stream_request.failed = True
            self._upload_queue.put_nowait(None)
            upload.cancel()
            with contextlib.suppress(BaseException):
                await upload
        self.mode = "batch"
        self._mode_known.set()
        await self._batch_loop()

    def _upload_ended(self, task: asyncio.Task[int]) -> None:
        if self.closed or self._draining:
            return
        if not task.cancelled() and task.exception() is not None:
            logger.debug("telefunc: SSE stream-request lost: %r", task.exception())
        self._lost()

    async def _batch_loop(self) -> None:
        while not self.closed:
            if not self._pending:
                self._idle.set()
                self._pending_set.clear()
                await self._pending_set.wait()
                continue
            frames, self._pending = self._pending, []
            body = length_prefixed([self._meta(), *frames])
            try:
                response = await self._http.post(
                    self._url(),
                    content=body,
                    headers=self._request_headers(),
                    timeout=self._timeout(REQUEST_TIMEOUT),
                )
                ok = response.status_code == 200
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("telefunc: SSE batch POST failed: %r", exc)
                ok = False
            if not ok:
                self._lost()  # the mux replays what the server did not process
                return

    async def drain(self, timeout: float) -> bool:
        """Upgrade: make sure every frame enqueued so far reached the server, and stop the upload
        (the server must process them before the RECONCILE of the new wire). ``False`` if that
        did not happen within ``timeout``."""
        self._draining = True
        try:
            async with asyncio.timeout(timeout):
                await self._mode_known.wait()
                if self.mode == "stream":
                    upload = self._upload
                    assert upload is not None
                    self._upload_queue.put_nowait(None)
                    # Not `await upload`: its cancellation (the wire closed) is no cancellation
                    # of the caller.
                    await asyncio.wait({upload})
                    return (
                        not upload.cancelled()
                        and upload.exception() is None
                        and upload.result() == 200
                    )
                await self._idle.wait()
                return not self.closed
        except Exception as exc:
            logger.debug("telefunc: SSE upstream drain failed: %r", exc)
            return False

    # ── end ─────────────────────────────────────────────────────────────

    def _lost(self) -> None:
        if self.closed:
            return
        wire = self.wire
        self.close()
        if wire is not None:
            self._mux.connection_lost(wire, self._now())

    def close(self, code: int = 0, reason: str = "") -> None:
        """Stop this wire's requests (the server sees a transient loss; ``code`` and ``reason``
        have no SSE equivalent)."""
        if self.closed:
            return
        self.closed = True
        self._upload_queue.put_nowait(None)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self._upload is not None and self._upload is not current:
            self._upload.cancel()
        self._idle.set()
        self._pending_set.set()
        self._mode_known.set()
        if self.on_finished is not None:
            self.on_finished(self)
