"""A broadcast transport over Redis pub/sub, so several processes (and machines) share broadcast.

    config.broadcast.transport = RedisBroadcast("redis://127.0.0.1:6379")
    # or: telefunc serve --redis redis://127.0.0.1:6379

Per-key order and ``seq`` come from one Lua script per publish; a lost counter starts a new epoch;
gaps are reported through ``on_gap``, never hidden; publishing while Redis is unreachable raises
:class:`~telefunc.errors.BroadcastTransportError` without retrying. Details
and the message format: docs/protocol.md §8.1. The transport binds to the event loop that first
uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    import redis.asyncio as redis_asyncio
    from redis.asyncio.client import PubSub
    from redis.asyncio.connection import UnixDomainSocketConnection, parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "telefunc.broadcast.redis needs redis-py (the `redis` package, version 5 or later): "
        "pip install redis"
    ) from exc

from telefunc.broadcast.transport import (
    BinaryCallback,
    BroadcastFanout,
    BroadcastGap,
    BroadcastTransport,
    PublishInfo,
    PublishReceipt,
    SeqTracker,
    TextCallback,
)
from telefunc.errors import BroadcastTransportError, UsageError
from telefunc.server import observe

__all__ = ["RedisBroadcast"]

logger = logging.getLogger("telefunc.broadcast")

# Runs atomically in Redis, so INCR-and-PUBLISH of all publishers are totally ordered per key.
_PUBLISH_LUA = """
-- KEYS[1]: the key's counter hash {s = last seq, e = epoch}.  ARGV[1]: pub/sub channel;
-- ARGV[2]: kind ('t' text, 'b' binary, '' = only make sure a counter >= floor exists);
-- ARGV[3]: payload; ARGV[4]: floor = highest seq of the key the caller has seen.
-- A missing (lost) or too-low counter restarts at max(now in s, floor) in a new epoch.
local now = redis.call('TIME')
local floor = tonumber(ARGV[4]) or 0
local state = redis.call('HMGET', KEYS[1], 's', 'e')
local seq = tonumber(state[1])
local epoch = state[2]
if seq == nil or not epoch or seq < floor then
  seq = math.max(tonumber(now[1]), floor, seq or 0)
  epoch = now[1] .. string.format('%06d', tonumber(now[2]))
  redis.call('HSET', KEYS[1], 's', string.format('%.0f', seq), 'e', epoch)
end
if ARGV[2] == '' then
  return {string.format('%.0f', seq), epoch}
end
seq = seq + 1
local s = string.format('%.0f', seq)
redis.call('HSET', KEYS[1], 's', s)
local ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local head = ARGV[2] .. s .. ',' .. ms .. ',' .. epoch .. '\\n'
return {s, ms, epoch, redis.call('PUBLISH', ARGV[1], head .. ARGV[3])}
"""

_KIND_TEXT = b"t"
_KIND_BINARY = b"b"
_KIND_BUMP = b""
_MAX_BATCH = 256
_KNOWN_LIMIT = 100_000
_BACKOFF_START = 0.05
_BACKOFF_MAX = 2.0
_MAX_CHANNELS_PER_COMMAND = 1000

# (key, kind, payload, future): the future gets a PublishReceipt, or None for a counter bump.
_Op = tuple[str, bytes, bytes, "asyncio.Future[Any]"]


class _Session:
    """One pub/sub connection (its own redis-py client and ``PubSub``) and what was asked on it."""

    def __init__(self, client: redis_asyncio.Redis) -> None:
        self.client = client
        self.pubsub: PubSub = client.pubsub()
        self.subscribed: dict[str, bool] = {}  # key -> last request sent: SUBSCRIBE (True) or not
        self.outstanding: dict[str, int] = {}  # key -> SUBSCRIBE/UNSUBSCRIBE replies still due
        self.confirmed: set[str] = set()  # keys whose latest reply was a SUBSCRIBE confirmation

    async def open(self) -> None:
        """Connect and authenticate; from then on redis-py may not reconnect it by itself."""
        await self.pubsub.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py
        connection = self.pubsub.connection
        assert connection is not None
        # redis-py reconnects a PubSub on its own, at once and resubscribing its channels. The
        # transport owns reconnects (backoff, counter push-up, subscription state), so a second
        # connect of this connection fails instead and the reader starts a fresh session.
        connection.deregister_connect_callback(self.pubsub.on_connect)
        connection.register_connect_callback(self._refuse_reconnect)

    def _refuse_reconnect(self, connection: Any) -> None:
        raise RedisConnectionError("the pub/sub connection was lost")

    def is_live(self, key: str) -> bool:
        """Whether Redis confirmed the subscription to ``key`` and no request on it is pending."""
        return (
            self.subscribed.get(key, False)
            and key in self.confirmed
            and not self.outstanding.get(key)
        )

    def request(self, keys: list[str], subscribe: bool) -> None:
        """Record a SUBSCRIBE (or UNSUBSCRIBE) of ``keys`` about to be sent."""
        for key in keys:
            self.subscribed[key] = subscribe
            self.outstanding[key] = self.outstanding.get(key, 0) + 1

    def replied(self, key: str, subscribed: bool) -> None:
        """Record Redis's confirmation of one SUBSCRIBE or UNSUBSCRIBE of ``key``."""
        remaining = self.outstanding.pop(key, 0) - 1
        if remaining > 0:
            self.outstanding[key] = remaining
        if subscribed:
            self.confirmed.add(key)
        else:
            self.confirmed.discard(key)
            if remaining <= 0 and not self.subscribed.get(key, True):
                del self.subscribed[key]

    async def close(self) -> None:
        """Drop the connection (no wait for the peer)."""
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()


class RedisBroadcast:
    """Broadcast through Redis: every process with the same URL and prefix shares each key.

    ``url``: a redis-py URL (``redis://[[user]:password@]host[:port]``, ``rediss://`` for TLS,
    ``unix:///path``) whose query string carries redis-py's connection options, e.g.
    ``rediss://host:6380?ssl_ca_certs=/etc/ca.pem&ssl_certfile=...&ssl_keyfile=...``.
    ``prefix`` namespaces channels and counters (several apps may share a Redis).
    ``connect_timeout`` bounds connecting, ``command_timeout`` a publish round trip;
    ``health_check_interval`` is the idle time after which the pub/sub connection is pinged.
    See the module docstring for the ordering, restart and gap-reporting guarantees.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "telefunc",
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
        health_check_interval: float = 5.0,
    ) -> None:
        try:
            params = parse_url(url)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"invalid Redis URL {url!r}: {exc}") from None
        if params.get("connection_class") is UnixDomainSocketConnection and not params.get("path"):
            raise UsageError(f"invalid Redis URL {url!r}: no socket path")
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.health_check_interval = health_check_interval
        self._fanout = BroadcastFanout(self._on_first, self._on_last)
        self._tracker = SeqTracker()
        # Highest seq seen per key (receipts and deliveries): the floor for a lost counter.
        self._known: dict[str, int] = {}
        self._gap_callbacks: list[Callable[[BroadcastGap], None]] = []
        self._closed = False
        # Publishing side.
        self._client: redis_asyncio.Redis | None = None
        self._queue: list[_Op] = []
        self._queue_event: asyncio.Event | None = None
        self._writer_task: asyncio.Task[None] | None = None
        # Subscribing side.
        self._reader_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._subscriptions_changed: asyncio.Event | None = None  # wakes the sender task
        self._session: _Session | None = None  # the live pub/sub connection
        self._dirty: set[str] = set()  # keys whose listeners came or went since the last sync
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: How many times the pub/sub connection was re-established after a loss.
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"RedisBroadcast({self.url!r}, prefix={self.prefix!r})"

    # -- naming -------------------------------------------------------------------------------

    def _channel(self, key: str) -> bytes:
        return f"{self.prefix}:bc:{key}".encode()

    def _key_of(self, channel: bytes) -> str | None:
        head = f"{self.prefix}:bc:".encode()
        if not channel.startswith(head):
            return None
        try:
            return channel[len(head) :].decode()
        except UnicodeDecodeError:
            return None

    def _counter(self, key: str) -> bytes:
        return f"{self.prefix}:bcseq:{key}".encode()

    # -- gaps ---------------------------------------------------------------------------------

    def on_gap(self, callback: Callable[[BroadcastGap], None]) -> Callable[[], None]:
        """Call ``callback(gap)`` whenever a key's sequence breaks; returns a remover."""
        self._gap_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._gap_callbacks.remove(callback)

        return remove

    def _report_gap(self, gap: BroadcastGap) -> None:
        observe.sink.redis_gap(gap.reason)
        logger.warning(
            "broadcast key %r via Redis at %s: expected seq %d, got %d (%s); "
            "messages may have been lost",
            gap.key,
            self.url,
            gap.expected_seq,
            gap.got_seq,
            gap.reason,
        )
        for callback in list(self._gap_callbacks):
            try:
                callback(gap)
            except Exception:
                logger.exception("an on_gap callback raised")

    def _remember(self, key: str, seq: int) -> None:
        if seq > self._known.get(key, 0):
            self._known.pop(key, None)  # re-insert at the end: oldest entries are evicted first
            self._known[key] = seq
            if len(self._known) > _KNOWN_LIMIT:
                del self._known[next(iter(self._known))]

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, key: str, text: str) -> PublishReceipt:
        """Publish ``text`` to ``key`` in every process; resolves once Redis ordered it."""
        if not isinstance(text, str):
            raise UsageError(f"publish() takes a str, got {type(text).__name__}")
        return await self._submit(key, _KIND_TEXT, text.encode())

    async def publish_binary(self, key: str, data: bytes) -> PublishReceipt:
        """Publish ``data`` on the binary lane of ``key`` in every process."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UsageError(f"publish_binary() takes bytes, got {type(data).__name__}")
        return await self._submit(key, _KIND_BINARY, bytes(data))

    async def _submit(self, key: str, kind: bytes, payload: bytes) -> PublishReceipt:
        if not isinstance(key, str):
            raise UsageError(f"a broadcast key must be a str, got {type(key).__name__}")
        if self._closed:
            raise BroadcastTransportError(f"the Redis broadcast transport ({self.url}) is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue((key, kind, payload, future))
        receipt: PublishReceipt = await future
        return receipt

    def _enqueue(self, op: _Op) -> None:
        # Appending synchronously fixes this process's publish order at call time.
        self._queue.append(op)
        if self._writer_task is None:
            self._queue_event = asyncio.Event()
            self._writer_task = asyncio.get_running_loop().create_task(
                self._writer_main(), name=f"telefunc-redis-publish {self.url}"
            )
        assert self._queue_event is not None
        self._queue_event.set()

    def _new_client(self, retry: Retry, max_connections: int) -> redis_asyncio.Redis:
        """A redis-py client for ``self.url``: both connections take their options from it."""
        return redis_asyncio.Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.command_timeout,
            retry=retry,
            health_check_interval=0,
            max_connections=max_connections,
            # RESP2: with RESP3, redis-py 8 enables maintenance notifications, which turns
            # off its check that a pooled connection was not closed by the server meanwhile.
            protocol=2,
        )

    def _get_client(self) -> redis_asyncio.Redis:
        if self._client is None:
            # No retries: a retried publish could be published twice; fail fast instead.
            self._client = self._new_client(Retry(NoBackoff(), 0), max_connections=4)
        return self._client

    async def _writer_main(self) -> None:
        assert self._queue_event is not None
        while True:
            await self._queue_event.wait()
            self._queue_event.clear()
            while self._queue:
                batch = self._queue[:_MAX_BATCH]
                del self._queue[:_MAX_BATCH]
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Op]) -> None:
        pipe = self._get_client().pipeline(transaction=False)
        for key, kind, payload, _ in batch:
            floor = self._known.get(key, 0)
            pipe.eval(_PUBLISH_LUA, 1, self._counter(key), self._channel(key), kind, payload, floor)
        try:
            async with asyncio.timeout(self.connect_timeout + self.command_timeout):
                results: list[Any] = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            error = BroadcastTransportError(
                f"cannot publish to Redis at {self.url}: {exc or type(exc).__name__} "
                "(if the connection broke mid-request the message may have been published)"
            )
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (key, kind, _, future), result in zip(batch, results, strict=True):
            if future.done():  # cancelled by the caller; the message is published regardless
                if kind != _KIND_BUMP and not isinstance(result, BaseException):
                    self._remember(key, int(result[0]))
                continue
            if isinstance(result, BaseException):
                future.set_exception(
                    BroadcastTransportError(f"Redis at {self.url} refused a publish: {result}")
                )
                continue
            if kind == _KIND_BUMP:
                future.set_result(None)
                continue
            seq, timestamp, epoch, receivers = result
            receipt = PublishReceipt(
                key,
                int(seq),
                int(timestamp),
                {"delivered": int(receivers), "transport": "redis", "epoch": epoch.decode()},
            )
            self._remember(key, receipt.seq)
            future.set_result(receipt)

    # -- listening ----------------------------------------------------------------------------

    def listen(self, key: str, callback: TextCallback) -> Callable[[], None]:
        """Call ``callback(text, info)`` for each text publish to ``key``; returns unsubscribe.

        The upstream SUBSCRIBE is asynchronous: ``await wait_subscribed(key)`` to know that
        publishes made from then on will arrive.
        """
        self._check_listen()
        return self._fanout.add_text(key, callback)

    def listen_binary(self, key: str, callback: BinaryCallback) -> Callable[[], None]:
        """Call ``callback(data, info)`` for each binary publish to ``key``; returns unsubscribe."""
        self._check_listen()
        return self._fanout.add_binary(key, callback)

    def _check_listen(self) -> None:
        if self._closed:
            raise BroadcastTransportError(f"the Redis broadcast transport ({self.url}) is closed")
        if self._reader_task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise UsageError(
                    "RedisBroadcast.listen() must be called on the event loop"
                ) from None
            self._closing = asyncio.Event()
            self._subscriptions_changed = asyncio.Event()
            self._reader_task = loop.create_task(
                self._reader_main(), name=f"telefunc-redis-subscribe {self.url}"
            )

    def _on_first(self, key: str) -> None:
        self._mark_dirty(key)

    def _on_last(self, key: str) -> None:
        self._tracker.forget(key)
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_exception(UsageError(f"the last listener of {key!r} left"))
        self._mark_dirty(key)

    def _mark_dirty(self, key: str) -> None:
        # Without a connection there is nothing to update: a new one subscribes every key.
        if self._session is not None and self._subscriptions_changed is not None:
            self._dirty.add(key)
            self._subscriptions_changed.set()

    def is_subscribed(self, key: str) -> bool:
        """Whether Redis confirmed this process's subscription to ``key`` (and none is pending)."""
        return self._session is not None and self._session.is_live(key)

    async def wait_subscribed(self, key: str) -> None:
        """Wait until publishes to ``key`` made from now on reach this process's listeners.

        Waits through reconnects; raises :class:`UsageError` if ``key`` has no listener.
        """
        if not self._fanout.has_listeners(key):
            raise UsageError(f"no listener for broadcast key {key!r}")
        if self.is_subscribed(key):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        await future

    def _wake_waiters(self, key: str) -> None:
        if self.is_subscribed(key):
            for future in self._waiters.pop(key, ()):
                if not future.done():
                    future.set_result(None)

    async def _open_session(self) -> _Session:
        # No retries, and none of redis-py's own reconnect attempts: the reader decides.
        session = _Session(
            self._new_client(Retry(NoBackoff(), 0, supported_errors=()), max_connections=1)
        )
        try:
            async with asyncio.timeout(self.connect_timeout):
                await session.open()
        except BaseException:
            await session.close()
            raise
        return session

    async def _reader_main(self) -> None:
        assert self._closing is not None
        delay = _BACKOFF_START
        failures = 0
        connected_before = False
        while not self._closed:
            try:
                session = await self._open_session()
            except (RedisError, OSError, TimeoutError) as exc:
                failures += 1
                if failures == 1:
                    logger.warning(
                        "broadcast: cannot reach Redis at %s (%s); retrying with backoff",
                        self.url,
                        exc or type(exc).__name__,
                    )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay * random.uniform(0.8, 1.2)):
                        await self._closing.wait()
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if connected_before:
                self.reconnects += 1
                logger.warning(
                    "broadcast: reconnected to Redis at %s; resubscribing %d key(s)",
                    self.url,
                    len(self._fanout.keys),
                )
            connected_before = True
            delay = _BACKOFF_START
            failures = 0
            try:
                await self._pump(session, resync=self.reconnects > 0)
            except ResponseError as exc:
                logger.error("broadcast: Redis at %s answered %s; reconnecting", self.url, exc)
            except (RedisError, OSError, TimeoutError) as exc:
                if not self._closed:
                    logger.warning(
                        "broadcast: lost the pub/sub connection to Redis at %s (%s); reconnecting",
                        self.url,
                        exc or type(exc).__name__,
                    )
            except Exception:
                # Never let the one reader die: log, drop the connection, reconnect.
                logger.exception("broadcast: pub/sub reader for %s failed; reconnecting", self.url)
            finally:
                self._session = None
                await session.close()

    async def _pump(self, session: _Session, *, resync: bool) -> None:
        assert self._subscriptions_changed is not None
        self._session = session
        self._dirty = set(self._fanout.keys)  # subscribe every key on the new connection
        self._subscriptions_changed.set()
        sender = asyncio.get_running_loop().create_task(
            self._sender_main(session), name=f"telefunc-redis-subscriptions {self.url}"
        )
        try:
            keys = sorted(self._fanout.keys)
            if resync and keys:
                await self._bump_counters(keys)
            await self._read_messages(session)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _read_messages(self, session: _Session) -> None:
        pubsub = session.pubsub
        loop = asyncio.get_running_loop()
        ping_sent_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=self.health_check_interval)
            if message is None:  # silence: PING, and give up if that stays unanswered
                if ping_sent_at is None:
                    ping_sent_at = loop.time()
                    await pubsub.ping()
                elif loop.time() - ping_sent_at >= self.health_check_interval:
                    raise RedisConnectionError("no answer to PING")
                continue
            ping_sent_at = None
            kind = message["type"]
            if kind == "message":
                self._on_message(message["channel"], message["data"])
            elif kind in ("subscribe", "unsubscribe"):
                key = self._key_of(message["channel"])
                if key is not None:
                    session.replied(key, kind == "subscribe")
                    self._wake_waiters(key)

    async def _sender_main(self, session: _Session) -> None:
        """Bring the connection's subscriptions in line with the keys that have listeners.

        The only task sending SUBSCRIBE/UNSUBSCRIBE, so they reach Redis in the order decided.
        """
        assert self._subscriptions_changed is not None
        changed = self._subscriptions_changed
        try:
            while True:
                await changed.wait()
                changed.clear()
                dirty, self._dirty = self._dirty, set()
                drop: list[str] = []
                add: list[str] = []
                for key in sorted(dirty):
                    wanted = self._fanout.has_listeners(key)
                    if wanted != session.subscribed.get(key, False):
                        (add if wanted else drop).append(key)
                for keys, subscribe in ((drop, False), (add, True)):
                    for i in range(0, len(keys), _MAX_CHANNELS_PER_COMMAND):
                        chunk = keys[i : i + _MAX_CHANNELS_PER_COMMAND]
                        session.request(chunk, subscribe)
                        channels = [self._channel(key) for key in chunk]
                        if subscribe:
                            await session.pubsub.subscribe(*channels)
                        else:
                            await session.pubsub.unsubscribe(*channels)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "broadcast: cannot update subscriptions on Redis at %s (%s)",
                self.url,
                exc or type(exc).__name__,
            )
        except Exception:
            logger.exception("broadcast: updating subscriptions on Redis at %s failed", self.url)
        finally:
            # The sender only ends with its connection: closing it makes the reader start anew.
            connection = session.pubsub.connection
            if connection is not None:
                await connection.disconnect(nowait=True)

    async def _bump_counters(self, keys: list[str]) -> None:
        """After a reconnect, raise lost counters to the seq this process last saw (see module)."""
        futures: list[asyncio.Future[Any]] = []
        loop = asyncio.get_running_loop()
        for key in keys:
            if key in self._known:
                future: asyncio.Future[Any] = loop.create_future()
                self._enqueue((key, _KIND_BUMP, b"", future))
                futures.append(future)
        if futures:
            # Bounded: the writer fails fast when Redis is unreachable.
            await asyncio.wait(futures)
            for future in futures:
                if not future.cancelled():
                    future.exception()  # retrieve, so asyncio does not warn
        for future in futures:
            if not future.done():
                future.cancel()

    def _on_message(self, channel: bytes, data: bytes) -> None:
        key = self._key_of(channel)
        if key is None or not self._fanout.has_listeners(key):
            return  # in flight before our UNSUBSCRIBE took effect
        newline = data.find(b"\n")
        try:
            if newline < 0:
                raise ValueError("no header")
            seq_s, ts_s, epoch_b = data[1:newline].split(b",")
            seq = int(seq_s)
            timestamp = int(ts_s)
            epoch = epoch_b.decode()
            text = data[newline + 1 :].decode() if data[:1] == _KIND_TEXT else None
        except ValueError:
            logger.error("broadcast: malformed message on Redis channel %r; ignored", channel)
            return
        gap = self._tracker.observe(key, seq, epoch)
        self._remember(key, seq)
        if gap is not None:
            self._report_gap(gap)
        info = PublishInfo(key, seq, timestamp)
        if text is not None:
            self._fanout.deliver_text(key, text, info)
        elif data[:1] == _KIND_BINARY:
            self._fanout.deliver_binary(key, data[newline + 1 :], info)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def fanout(self) -> BroadcastFanout:
        """The local listener registry (for inspection and tests)."""
        return self._fanout

    async def aclose(self) -> None:
        """Stop the reader and writer, close both connections, fail pending publishes."""
        if self._closed:
            return
        self._closed = True
        if self._closing is not None:
            self._closing.set()
        tasks = [t for t in (self._reader_task, self._writer_task) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        error = BroadcastTransportError(f"the Redis broadcast transport ({self.url}) is closed")
        for *_, future in self._queue:
            if not future.done():
                future.set_exception(error)
        self._queue.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        self._waiters.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


if TYPE_CHECKING:

    def _satisfies_protocol(transport: RedisBroadcast) -> BroadcastTransport:
        return transport  # mypy checks RedisBroadcast against the protocol here
