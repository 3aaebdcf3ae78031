"""Distributed broadcast across Durable Objects, with presence in KV (docs/cloudflare.md §4.3).

Each telefunc Durable Object has one :class:`DurableBroadcast`, the broadcast transport
(docs/protocol.md §8) of every event it handles. A publish goes through the key's authority
object, which orders it, to one coordinator per region with subscribers, to the objects with
subscribers. Presence is kept in KV and reported to the authority directly
(docs/cloudflare.md §4.4), so a subscription is effective once the authority acknowledged it.
Pure Python: every JS value goes through :mod:`telefunc.cloudflare._ffi`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from telefunc.broadcast.transport import (
    BinaryCallback,
    BroadcastFanout,
    PublishInfo,
    PublishReceipt,
    TextCallback,
)
from telefunc.cloudflare import _ffi
from telefunc.errors import BroadcastTransportError, ChannelOverflowError, UsageError

__all__ = [
    "PRESENCE_KEY_PREFIX",
    "PRESENCE_KV_PROPAGATION",
    "PRESENCE_REFRESH",
    "PRESENCE_RETRY",
    "PRESENCE_TTL",
    "PUBLISH_BUFFER_LIMIT",
    "BroadcastSettings",
    "DurableBroadcast",
    "authority_name",
    "coordinator_name",
    "encode_uri_component",
    "key_hash",
    "presence_key",
    "presence_prefix",
]

logger = logging.getLogger("telefunc.broadcast")

PRESENCE_TTL = 90
"""Lifetime of a presence record in KV, seconds."""
PRESENCE_REFRESH = 30.0
"""How often an object with listeners rewrites its presence records, seconds."""
PRESENCE_RETRY = 1.0
"""Delay before retrying a failed presence write (KV allows one write per key per second)."""
PRESENCE_KEY_PREFIX = "tfps:"
"""KV key prefix of presence records."""
PUBLISH_BUFFER_LIMIT = 512 * 1024
"""Bytes of publishes a key buffers while its presence record is being written."""
PRESENCE_KV_PROPAGATION = 60.0
"""How long KV may take to show a write or delete in another colo, seconds (Cloudflare's bound):
how long the authority hides the KV record of an object that told it it unsubscribed."""


# ── names ──────────────────────────────────────────────────────────────────


def encode_uri_component(text: str) -> str:
    """JavaScript's ``encodeURIComponent`` (UTF-8, ``A-Za-z0-9-_.!~*'()`` kept)."""
    return quote(text, safe="!~*'()")


def key_hash(key: str) -> int:
    """``h = (h * 31 + charCode) >>> 0`` over the key's UTF-16 code units, as in 0.2.23."""
    h = 0
    units = key.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(units), 2):
        h = (h * 31 + (units[i] | units[i + 1] << 8)) & 0xFFFFFFFF
    return h


def authority_name(instance_name: str, key: str) -> str:
    """The authority object of ``key``: ``<instance>:broadcast:authority:<key>``."""
    return f"{instance_name}:broadcast:authority:{key}"


def coordinator_name(instance_name: str, key: str, region: str, region_scale: int) -> str:
    """The coordinator of ``key`` in ``region``: one of ``ceil(region_scale / 2)`` objects."""
    count = max(1, math.ceil(region_scale / 2))
    return f"{instance_name}:broadcast:{region}:{key_hash(key) % count}"


def presence_prefix(key: str) -> str:
    """The KV prefix of every presence record of ``key``."""
    return f"{PRESENCE_KEY_PREFIX}{encode_uri_component(key)}:"


def presence_key(key: str, region: str, object_name: str) -> str:
    """``tfps:<encodeURIComponent(key)>:<region>:<object name>``."""
    return f"{presence_prefix(key)}{region}:{object_name}"


@dataclass(frozen=True, slots=True)
class BroadcastSettings:
    """What every object of one app needs to reach the others (from ``Telefunc(...)``)."""

    instance_name: str
    #: Objects per region (the router's counts): sizes the coordinator pool of a region.
    counts: Mapping[str, int]
    binding_name: str
    kv_binding_name: str
    jurisdiction: str | None
    location_fallback: str


# ── per-key member state ───────────────────────────────────────────────────


class _Pending:
    """A publish waiting for its key's presence record to be written."""

    __slots__ = ("body", "future", "size")

    def __init__(self, body: dict[str, Any], size: int, future: asyncio.Future[Any]) -> None:
        self.body = body
        self.size = size
        self.future = future


class _Member:
    """This object's subscription to one key: presence record, refresh timer, publish buffer."""

    __slots__ = (
        "buffered",
        "flushing",
        "key",
        "queue",
        "ready",
        "retry_authority",
        "retry_kv",
        "setup_in_flight",
        "teardown_requested",
        "timer",
    )

    def __init__(self, key: str) -> None:
        self.key = key
        self.setup_in_flight = True
        self.teardown_requested = False
        self.flushing = False
        self.timer: Any = None
        self.queue: deque[_Pending] = deque()
        self.buffered = 0
        self.ready = asyncio.Event()
        # What the next timer must redo: both on a regular refresh, the failed part on a retry.
        self.retry_kv = True
        self.retry_authority = True


class _AuthorityPresence:
    """The presence a key's authority was told about directly (see the module docstring).

    ``members``: ``"<region>:<object>"`` → expiry (Date.now() seconds); ``gone``: the same for
    objects that said they unsubscribed, until their KV delete has surely propagated.
    """

    __slots__ = ("gone", "members")

    def __init__(self, members: dict[str, float], gone: dict[str, float]) -> None:
        self.members = members
        self.gone = gone

    @classmethod
    def parse(cls, stored: Any) -> _AuthorityPresence:
        """From the JSON kept in storage (anything unreadable counts as empty)."""
        try:
            data = json.loads(stored) if stored else {}
            members = {str(k): float(v) for k, v in dict(data.get("members") or {}).items()}
            gone = {str(k): float(v) for k, v in dict(data.get("gone") or {}).items()}
        except (TypeError, ValueError, AttributeError):
            return cls({}, {})
        return cls(members, gone)

    def dump(self) -> str:
        """The JSON kept in storage."""
        return json.dumps({"members": self.members, "gone": self.gone}, separators=(",", ":"))

    def prune(self, now: float) -> None:
        """Forget expired members and tombstones (a KV record expires at exactly its TTL)."""
        for table in (self.members, self.gone):
            for member in [m for m, until in table.items() if until <= now]:
                del table[member]


async def _done() -> bool:
    return True


def _receipt(key: str, result: Any) -> PublishReceipt:
    if not isinstance(result, Mapping) or "seq" not in result:
        raise BroadcastTransportError(f"broadcast authority of {key!r} gave no receipt: {result!r}")
    meta = result.get("meta")
    return PublishReceipt(
        key, int(result["seq"]), result["timestamp"], dict(meta) if meta is not None else {}
    )


def _timestamp(value: Any) -> float:
    # Whole milliseconds travel as numbers; keep an int when it is one (formats like JS).
    number = float(value)
    return int(number) if number.is_integer() else number


class DurableBroadcast:
    """The broadcast transport of one Durable Object (see the module docstring).

    :param state: the object's ``ctx`` (storage for the authority's counters).
    :param env: the object's ``env`` (the Durable Object and KV bindings).
    :param settings: the app's :class:`BroadcastSettings`.
    :param identity: returns ``(object name, region)`` as learnt from the forwarded headers.
    """

    def __init__(
        self,
        state: Any,
        env: Any,
        settings: BroadcastSettings,
        identity: Callable[[], tuple[str | None, str | None]],
    ) -> None:
        self.state = state
        self.env = env
        self.settings = settings
        self.identity = identity
        self.fanout = BroadcastFanout(self._on_first, self._on_last)
        self._members: dict[str, _Member] = {}
        self._stubs: dict[str, Any] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        # Authority state: publishes serialized by one lock; counters cached after first read.
        self._lock: asyncio.Lock | None = None
        self._seqs: dict[str, int] = {}
        self._authority_buckets: dict[str, str] = {}
        self._authority_presence: dict[str, _AuthorityPresence] = {}
        # Last seq delivered per key on this object (drops reordered duplicates).
        self._delivered: dict[str, int] = {}
        #: Messages dropped because their seq was not above the last delivered one.
        self.dropped_out_of_order = 0
        self._closed = False

    # ── bindings ────────────────────────────────────────────────────────

    def _namespace(self) -> Any:
        namespace = _ffi.namespace_binding(self.env, self.settings.binding_name)
        if namespace is None:
            raise UsageError(
                f"Missing Cloudflare Durable Object binding {self.settings.binding_name!r}: "
                "BroadcastChannel needs it"
            )
        if self.settings.jurisdiction is not None:
            namespace = namespace.jurisdiction(self.settings.jurisdiction)
        return namespace

    def _kv(self) -> Any:
        kv = _ffi.namespace_binding(self.env, self.settings.kv_binding_name)
        if kv is None:
            raise UsageError(
                f"Missing Cloudflare KV namespace binding {self.settings.kv_binding_name!r}: "
                "BroadcastChannel presence needs it"
            )
        return kv

    def _stub(self, name: str, hint: str | None) -> Any:
        # One stub per destination: calls made on one stub are delivered in order.
        stub = self._stubs.get(name)
        if stub is None:
            stub = _ffi.stub_for(self._namespace(), name, hint)
            self._stubs[name] = stub
        return stub

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _require_identity(self) -> tuple[str, str]:
        name, region = self.identity()
        if not name or not region:
            raise UsageError(
                "a broadcast subscription needs the object's name and region, which arrive with "
                "the first request forwarded by Telefunc.serve()"
            )
        return name, region

    # ── the transport interface (docs/protocol.md §8) ────────────────────────────────────

    def listen(self, key: str, callback: TextCallback) -> Callable[[], None]:
        """Call ``callback(text, info)`` for each text publish to ``key``; returns unsubscribe."""
        self._require_identity()
        self._kv()
        return self.fanout.add_text(key, callback)

    def listen_binary(self, key: str, callback: BinaryCallback) -> Callable[[], None]:
        """Call ``callback(data, info)`` for each binary publish to ``key``; returns unsubscribe."""
        self._require_identity()
        self._kv()
        return self.fanout.add_binary(key, callback)

    async def publish(self, key: str, text: str) -> PublishReceipt:
        """Publish ``text`` to every listener of ``key`` in every object."""
        return await self._submit(key, {"serialized": text}, len(text.encode("utf-8")))

    async def publish_binary(self, key: str, data: bytes) -> PublishReceipt:
        """Publish ``data`` on the binary lane of ``key``."""
        data = bytes(data)
        return await self._submit(key, {"binaryData": data}, len(data))

    async def wait_subscribed(self, key: str) -> None:
        """Wait until ``key``'s next publish will reach this object (if it listens).

        That is: its KV presence record is written and the key's authority acknowledged it.
        """
        member = self._members.get(key)
        if member is not None:
            await member.ready.wait()

    async def aclose(self) -> None:
        """Stop refreshing presence; publishing afterwards raises."""
        self._closed = True
        for member in list(self._members.values()):
            self._stop_refresh(member)

    # ── publishing ──────────────────────────────────────────────────────

    async def _submit(self, key: str, body: dict[str, Any], size: int) -> PublishReceipt:
        if self._closed:
            raise BroadcastTransportError("the Durable Object broadcast transport is closed")
        if not isinstance(key, str):
            raise UsageError(f"a broadcast key must be a str, got {type(key).__name__}")
        member = self._members.get(key)
        if member is not None and (member.setup_in_flight or member.flushing):
            future: asyncio.Future[PublishReceipt] = asyncio.get_running_loop().create_future()
            self._buffer(member, _Pending(body, size, future))
            return await future
        return await self._send(key, body)

    def _buffer(self, member: _Member, entry: _Pending) -> None:
        if entry.size > PUBLISH_BUFFER_LIMIT:
            entry.future.set_exception(
                ChannelOverflowError(
                    f"publish to {member.key!r} of {entry.size} bytes exceeds the "
                    f"{PUBLISH_BUFFER_LIMIT}-byte buffer used while its presence is set up"
                )
            )
            return
        member.queue.append(entry)
        member.buffered += entry.size
        while member.buffered > PUBLISH_BUFFER_LIMIT and member.queue:
            oldest = member.queue.popleft()
            member.buffered -= oldest.size
            if not oldest.future.done():
                oldest.future.set_exception(
                    ChannelOverflowError(
                        f"publish to {member.key!r} evicted from the buffer before the key's "
                        "presence was set up"
                    )
                )

    async def _flush(self, member: _Member) -> None:
        if member.flushing:
            return
        member.flushing = True
        try:
            while member.queue:
                entry = member.queue.popleft()
                member.buffered -= entry.size
                try:
                    receipt = await self._send(member.key, entry.body)
                except Exception as exc:
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                else:
                    if not entry.future.done():
                        entry.future.set_result(receipt)
        finally:
            member.flushing = False

    async def _send(self, key: str, body: dict[str, Any]) -> PublishReceipt:
        _, region = self.identity()
        bucket = region or self.settings.location_fallback
        authority = authority_name(self.settings.instance_name, key)
        stub = self._stub(authority, bucket)
        request = {"key": key, "locationBucket": bucket, **body}
        try:
            result = await _ffi.stub_call(stub, "telefuncBroadcastPublish", request)
        except (UsageError, BroadcastTransportError):
            raise
        except Exception as exc:
            # The authority's own error names the region or object whose delivery failed.
            raise BroadcastTransportError(
                f"publish to {key!r} through {authority} failed: {exc}"
            ) from exc
        return _receipt(key, result)

    # ── authority and coordinator (RPC ``telefuncBroadcastPublish``) ─────

    async def handle_publish(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``telefuncBroadcastPublish``: sequence, fan out (authority); deliver (coordinator)."""
        key = str(request["key"])
        body = {k: request[k] for k in ("serialized", "binaryData") if request.get(k) is not None}
        if request.get("forwarded"):
            info = dict(request["info"])
            names = [str(n) for n in request.get("doNames") or []]
            await self._deliver_to(names, {"key": key, **body, "info": info})
            return {"seq": info["seq"], "timestamp": info["timestamp"]}
        async with self._authority_lock():
            bucket = str(request.get("locationBucket") or self.settings.location_fallback)
            authority_bucket = await self._authority_bucket(key, bucket)
            seq = await self._next_seq(key)
            presence = await self._presence_by_region(key)
            timestamp = _timestamp(round(_ffi.now() * 1000))
            info = {"seq": seq, "timestamp": timestamp}
            # Started before the lock is released: the next publish's calls queue behind these.
            fanout = asyncio.gather(
                *(
                    self._forward(key, region, names, body, info)
                    for region, names in presence.items()
                ),
                return_exceptions=True,
            )
        failed = [str(r) for r in await fanout if isinstance(r, BaseException)]
        if failed:
            # As the JS adapter's Promise.all: publish() fails when any delivery failed.
            raise BroadcastTransportError("; ".join(failed))
        meta = {"authorityBucket": authority_bucket, "fanoutBuckets": list(presence)}
        return {"seq": seq, "timestamp": timestamp, "meta": meta}

    def _authority_lock(self) -> asyncio.Lock:
        # One lock for publishes and presence reports: a report acknowledged before a publish
        # takes the lock is in that publish's fan-out (asyncio.Lock serves in arrival order).
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def handle_presence(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``telefuncBroadcastPresence``: an object reports it has (no more) listeners of a key.

        Answers ``{"present": bool, "expires": ms}`` once the report is in storage.
        """
        key = str(request["key"])
        bucket = str(request.get("bucket") or "")
        name = str(request.get("doName") or "")
        if not bucket or not name or ":" in bucket:
            raise UsageError(f"telefuncBroadcastPresence needs a bucket and a doName: {request!r}")
        present = bool(request.get("present"))
        member = f"{bucket}:{name}"
        async with self._authority_lock():
            # The first contact with the authority creates it near the caller (locationHint).
            await self._authority_bucket(key, bucket)
            table = await self._load_presence(key)
            now = _ffi.now()
            table.prune(now)
            expires = now + PRESENCE_TTL
            if present:
                table.members[member] = expires
                table.gone.pop(member, None)
            else:
                table.members.pop(member, None)
                table.gone[member] = now + PRESENCE_KV_PROPAGATION
            await _ffi.storage_put(self.state, f"broadcast:{key}:presence", table.dump())
        return {"present": present, "expires": _timestamp(round(expires * 1000))}

    async def _load_presence(self, key: str) -> _AuthorityPresence:
        table = self._authority_presence.get(key)
        if table is None:
            stored = await _ffi.storage_get(self.state, f"broadcast:{key}:presence")
            table = _AuthorityPresence.parse(stored)
            self._authority_presence[key] = table
        return table

    async def _authority_bucket(self, key: str, preferred: str) -> str:
        cached = self._authority_buckets.get(key)
        if cached is not None:
            return cached
        storage_key = f"broadcast:{key}:authority-bucket"
        stored = await _ffi.storage_get(self.state, storage_key)
        bucket = str(stored) if stored else preferred
        if not stored:
            await _ffi.storage_put(self.state, storage_key, bucket)
        self._authority_buckets[key] = bucket
        return bucket

    async def _next_seq(self, key: str) -> int:
        storage_key = f"broadcast:{key}:sequence"
        current = self._seqs.get(key)
        if current is None:
            current = int(await _ffi.storage_get(self.state, storage_key) or 0)
        seq = current + 1
        self._seqs[key] = seq
        await _ffi.storage_put(self.state, storage_key, seq)
        return seq

    async def _presence_by_region(self, key: str) -> dict[str, list[str]]:
        # KV's listing (what this colo sees) plus what objects told this authority directly,
        # minus objects that told it they left (their KV delete may not have reached us yet).
        table = await self._load_presence(key)
        table.prune(_ffi.now())
        prefix = presence_prefix(key)
        by_region: dict[str, dict[str, None]] = {}
        for name in await _ffi.kv_list_names(self._kv(), prefix):
            member = name[len(prefix) :]
            region, sep, object_name = member.partition(":")
            if sep and object_name and member not in table.gone:
                by_region.setdefault(region, {})[object_name] = None
        for member in table.members:
            region, _, object_name = member.partition(":")
            by_region.setdefault(region, {})[object_name] = None
        return {region: list(names) for region, names in by_region.items()}

    async def _forward(
        self,
        key: str,
        region: str,
        names: list[str],
        body: dict[str, Any],
        info: dict[str, Any],
    ) -> None:
        scale = self.settings.counts.get(region, 0)
        stub = self._stub(coordinator_name(self.settings.instance_name, key, region, scale), region)
        request = {
            "key": key,
            **body,
            "forwarded": True,
            "locationBucket": region,
            "doNames": names,
            "info": info,
        }
        try:
            await _ffi.stub_call(stub, "telefuncBroadcastPublish", request)
        except Exception as exc:
            raise BroadcastTransportError(
                f"region {region}: broadcast seq {info['seq']} of {key!r} failed at its "
                f"coordinator {coordinator_name(self.settings.instance_name, key, region, scale)}"
                f": {exc}"
            ) from exc

    async def _deliver_to(self, names: list[str], request: dict[str, Any]) -> None:
        calls = [
            _ffi.stub_call(self._stub(name, None), "telefuncBroadcastDeliver", request)
            for name in names
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        failed = [
            f"{name} ({result})"
            for name, result in zip(names, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if failed:
            # Every object was tried; the publish fails naming the ones that did not receive it.
            raise BroadcastTransportError(
                f"broadcast seq {request['info']['seq']} of {request['key']!r} was not "
                f"delivered to {', '.join(failed)}"
            )

    # ── delivery (RPC ``telefuncBroadcastDeliver``) ─────────────────────

    def deliver_local(self, request: Mapping[str, Any]) -> int:
        """Hand one message to this object's listeners; returns how many were reached."""
        key = str(request["key"])
        raw = request["info"]
        seq = int(raw["seq"])
        last = self._delivered.get(key)
        if last is not None and seq <= last:
            self.dropped_out_of_order += 1
            logger.warning("telefunc: broadcast seq %d of %r after %d dropped", seq, key, last)
            return 0
        if self.fanout.has_listeners(key):
            self._delivered[key] = seq
        info = PublishInfo(key, seq, _timestamp(raw["timestamp"]))
        reached = 0
        text = request.get("serialized")
        if text is not None:
            reached += self.fanout.deliver_text(key, str(text), info)
        data = request.get("binaryData")
        if data is not None:
            reached += self.fanout.deliver_binary(key, bytes(data), info)
        return reached

    # ── presence ────────────────────────────────────────────────────────

    def _on_first(self, key: str) -> None:
        member = self._members.get(key)
        if member is not None:  # re-subscribed while the teardown waited for the setup
            member.teardown_requested = False
            return
        member = _Member(key)
        self._members[key] = member
        self._spawn(self._setup(member))

    def _on_last(self, key: str) -> None:
        self._delivered.pop(key, None)
        member = self._members.get(key)
        if member is None:
            return
        if member.setup_in_flight or member.flushing:
            member.teardown_requested = True
            return
        self._teardown(member)

    async def _setup(self, member: _Member) -> None:
        await self._report_presence(member)
        member.setup_in_flight = False
        member.ready.set()
        await self._flush(member)
        if member.teardown_requested and not self.fanout.has_listeners(member.key):
            self._teardown(member)

    def _teardown(self, member: _Member) -> None:
        self._stop_refresh(member)
        if self._members.get(member.key) is member:
            del self._members[member.key]
        # Both start now, in this order, on the cached stub: a re-subscribe's report follows.
        self._spawn(self._tell_authority(member.key, False))
        self._spawn(self._delete_presence(member.key))

    def _arm_refresh(self, member: _Member, delay: float) -> None:
        self._stop_refresh(member)
        if self._closed or self._members.get(member.key) is not member:
            return
        member.timer = _ffi.set_timeout(lambda: self._refresh(member), delay)

    def _stop_refresh(self, member: _Member) -> None:
        timer, member.timer = member.timer, None
        _ffi.clear_timeout(timer)

    def _refresh(self, member: _Member) -> None:
        member.timer = None
        if self._members.get(member.key) is not member:
            return

        self._spawn(self._report_presence(member))

    async def _report_presence(self, member: _Member) -> None:
        # KV write and authority report run side by side; a failed one alone is retried soon.
        kv, authority = member.retry_kv, member.retry_authority
        written, told = await asyncio.gather(
            self._write_presence(member.key) if kv else _done(),
            self._tell_authority(member.key, True) if authority else _done(),
        )
        member.retry_kv, member.retry_authority = not written, not told
        if written and told:
            member.retry_kv = member.retry_authority = True
            self._arm_refresh(member, PRESENCE_REFRESH)
        else:
            self._arm_refresh(member, PRESENCE_RETRY)

    async def _tell_authority(self, key: str, present: bool) -> bool:
        try:
            name, region = self._require_identity()
            stub = self._stub(authority_name(self.settings.instance_name, key), region)
            request = {"key": key, "bucket": region, "doName": name, "present": present}
            await _ffi.stub_call(stub, "telefuncBroadcastPresence", request)
        except Exception as exc:  # KV still finds the object once it has propagated
            logger.warning(
                "telefunc: broadcast presence report (%s) for %r to its authority failed: %s",
                "subscribe" if present else "unsubscribe",
                key,
                exc,
            )
            return False
        return True

    def _presence_key(self, key: str) -> str:
        name, region = self._require_identity()
        return presence_key(key, region, name)

    async def _write_presence(self, key: str) -> bool:
        try:
            record = self._presence_key(key)
            name, _ = self._require_identity()
            await _ffi.kv_put(self._kv(), record, name, ttl=PRESENCE_TTL)
        except Exception as exc:  # KV hiccup or the 1 write/s/key limit: retried shortly
            logger.warning("telefunc: broadcast presence write for %r failed: %s", key, exc)
            return False
        return True

    async def _delete_presence(self, key: str) -> None:
        try:
            await _ffi.kv_delete(self._kv(), self._presence_key(key))
        except Exception as exc:  # the record then expires on its own within PRESENCE_TTL
            logger.warning("telefunc: broadcast presence delete for %r failed: %s", key, exc)

    @property
    def presence_keys(self) -> frozenset[str]:
        """Keys this object currently holds presence for (set up or being set up)."""
        return frozenset(self._members)
