"""Workers KV with per-colo caches, propagation delay, negative caching and the platform limits.

Model (docs/cloudflare.md §3 "KV eventual consistency"):

* the central store keeps every version of a key with the colo that wrote it and the time it
  becomes visible elsewhere (``written + kv_delay``); the writing colo sees it at once;
* each colo caches what it read, hits and misses alike (negative caching), for ``cacheTtl``
  seconds (default 60, minimum 30), so a colo that read a key keeps the old answer until its
  cache entry expires, as in production;
* ``expirationTtl >= 60``, ``cacheTtl >= 30``, 1 write per second per key (429), key <= 512 B,
  value <= 25 MiB, metadata <= 1024 B, ``list`` <= 1000 keys a page; errors carry the messages
  the real runtime uses (``KV PUT failed: 400 Invalid expiration_ttl of 10. ...``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._context import current_colo, reenter_gate
from .ffi import JsException, JsProxy, from_js
from .web import ReadableStream, init_options

if TYPE_CHECKING:
    from .runtime import Emulator

__all__ = ["KVNamespace"]

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MIN_EXPIRATION_TTL = 60
MIN_CACHE_TTL = 30
DEFAULT_CACHE_TTL = 60
MAX_LIST_LIMIT = 1000


@dataclass
class _Version:
    value: bytes | None  # None: a deletion
    metadata: Any
    expiration: float | None
    written_at: float
    visible_at: float
    origin: str


@dataclass
class _CacheEntry:
    version: _Version | None  # None: cached miss
    until: float


class KVNamespace(JsProxy):
    """A KV namespace binding (``env.KV``)."""

    _js_name = "KvNamespace"  # what the runtime's class is called (the SDK wraps it by name)

    def __init__(self, emulator: Emulator, name: str) -> None:
        self._emu = emulator
        self.name = name
        self._versions: dict[str, list[_Version]] = {}
        self._caches: dict[str, dict[str, _CacheEntry]] = {}
        self._last_write: dict[str, float] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _colo(self) -> str:
        return current_colo.get() or self._emu.default_colo

    def _now(self) -> float:
        return self._emu.clock.now()

    @staticmethod
    def _check_key(raw: Any, op: str) -> str:
        key = raw if isinstance(raw, str) else str(raw)
        n = len(key.encode())
        if n == 0 or key in (".", ".."):
            raise JsException("TypeError", f'KV {op} failed: 400 Invalid key name "{key}".')
        if n > MAX_KEY_BYTES:
            raise JsException(
                "Error",
                f"KV {op} failed: 414 UTF-8 encoded length of {n} exceeds key length limit "
                f"of {MAX_KEY_BYTES}.",
            )
        return key

    def _central(self, key: str, colo: str) -> _Version | None:
        now = self._now()
        for v in reversed(self._versions.get(key, [])):
            if v.origin == colo or v.visible_at <= now:
                return v
        return None

    def _live(self, v: _Version | None) -> _Version | None:
        if v is None or v.value is None:
            return None
        if v.expiration is not None and v.expiration <= self._now():
            return None
        return v

    def _lookup(self, key: str, cache_ttl: float) -> _Version | None:
        colo = self._colo()
        cache = self._caches.setdefault(colo, {})
        now = self._now()
        entry = cache.get(key)
        if entry is None or entry.until <= now:
            version = self._central(key, colo)
            entry = _CacheEntry(version, now + cache_ttl)
            cache[key] = entry
        return self._live(entry.version)

    async def _io(self) -> None:
        # KV is network I/O: it yields, and its completion re-enters the caller's input gate
        # (docs/cloudflare.md §3 "Gates open on non-storage I/O").
        await asyncio.sleep(0)
        await reenter_gate()

    # -- reads -----------------------------------------------------------------------------
    async def get(self, key: str | list[str], *args: Any, **kwargs: Any) -> Any:
        """``get(key, type="text"|"json"|"arrayBuffer"|"stream", cacheTtl=...)``; None if absent.

        A list of keys (up to 100) returns a dict of the values.
        """
        opts = _type_opts(args, kwargs)
        typ = opts.get("type", "text")
        cache_ttl = self._cache_ttl(opts)
        if isinstance(key, list | tuple):
            if len(key) > 100:
                raise JsException("TypeError", "KV GET_BULK failed: 400 too many keys (max 100)")
            keys = [self._check_key(k, "GET_BULK") for k in key]
            self._emu.counters.kv_reads += 1
            await self._io()
            out: dict[str, Any] = {}
            for k in keys:
                v = self._lookup(k, cache_ttl)
                out[k] = None if v is None else _decode(v.value, typ)
            return out
        k = self._check_key(key, "GET")
        self._emu.counters.kv_reads += 1
        await self._io()
        v = self._lookup(k, cache_ttl)
        return None if v is None else _decode(v.value, typ)

    async def getWithMetadata(self, key: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``{"value": ..., "metadata": ..., "cacheStatus": None}``."""
        opts = _type_opts(args, kwargs)
        typ = opts.get("type", "text")
        cache_ttl = self._cache_ttl(opts)
        k = self._check_key(key, "GET")
        self._emu.counters.kv_reads += 1
        await self._io()
        v = self._lookup(k, cache_ttl)
        if v is None:
            return {"value": None, "metadata": None, "cacheStatus": None}
        return {
            "value": _decode(v.value, typ),
            "metadata": json.loads(json.dumps(v.metadata)) if v.metadata is not None else None,
            "cacheStatus": None,
        }

    def _cache_ttl(self, opts: dict[str, Any]) -> float:
        ttl = opts.get("cacheTtl")
        if ttl is None:
            return DEFAULT_CACHE_TTL
        if not isinstance(ttl, int | float) or ttl < MIN_CACHE_TTL:
            raise JsException(
                "Error",
                f"KV GET failed: 400 Invalid cache_ttl of {ttl}. Cache TTL must be at least "
                f"{MIN_CACHE_TTL}.",
            )
        return float(ttl)

    # -- writes ----------------------------------------------------------------------------
    def _rate_limit(self, key: str, op: str) -> None:
        now = self._now()
        last = self._last_write.get(key)
        if self._emu.kv_write_limit and last is not None and now - last < 1.0:
            # docs/cloudflare.md §3: 1 write per second to the same key, else 429 (production only).
            raise JsException("Error", f"KV {op} failed: 429 Too Many Requests")
        self._last_write[key] = now

    async def put(self, key: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Write ``value`` (str, bytes, stream); options ``expiration[Ttl]`` and ``metadata``."""
        opts = init_options(args, kwargs)
        k = self._check_key(key, "PUT")
        now = self._now()
        expiration: float | None = None
        if opts.get("expirationTtl") is not None:
            ttl = opts["expirationTtl"]
            if not isinstance(ttl, int | float) or ttl < MIN_EXPIRATION_TTL:
                raise JsException(
                    "Error",
                    f"KV PUT failed: 400 Invalid expiration_ttl of {ttl}. Expiration TTL must be "
                    f"at least {MIN_EXPIRATION_TTL}.",
                )
            expiration = now + float(ttl)
        elif opts.get("expiration") is not None:
            exp = opts["expiration"]
            if not isinstance(exp, int | float) or exp < now + MIN_EXPIRATION_TTL:
                raise JsException(
                    "Error",
                    f"KV PUT failed: 400 Invalid expiration of {exp}. Expiration times must be at "
                    f"least {MIN_EXPIRATION_TTL} seconds in the future.",
                )
            expiration = float(exp)
        data = await _encode(value)
        if len(data) > MAX_VALUE_BYTES:
            raise JsException(
                "Error",
                f"KV PUT failed: 413 Value length of {len(data)} exceeds limit of "
                f"{MAX_VALUE_BYTES}.",
            )
        metadata = from_js(opts.get("metadata"))
        if metadata is not None:
            mlen = len(json.dumps(metadata).encode())
            if mlen > MAX_METADATA_BYTES:
                raise JsException(
                    "Error",
                    f"KV PUT failed: 413 Metadata length of {mlen} exceeds limit of "
                    f"{MAX_METADATA_BYTES}.",
                )
        self._rate_limit(k, "PUT")
        self._emu.counters.kv_writes += 1
        self._write(k, data, metadata, expiration)
        await self._io()

    async def delete(self, key: str, *args: Any, **kwargs: Any) -> None:
        """Delete ``key`` (propagates like a write)."""
        k = self._check_key(key, "DELETE")
        self._rate_limit(k, "DELETE")
        self._emu.counters.kv_deletes += 1
        self._write(k, None, None, None)
        await self._io()

    def _write(self, key: str, data: bytes | None, metadata: Any, expiration: float | None) -> None:
        now = self._now()
        colo = self._colo()
        v = _Version(data, metadata, expiration, now, now + self._emu.kv_delay, colo)
        versions = self._versions.setdefault(key, [])
        versions.append(v)
        # Versions visible everywhere supersede older ones; keep the list short.
        while len(versions) > 1 and versions[1].visible_at <= now:
            versions.pop(0)
        # Read-your-write in the writing colo (docs/cloudflare.md §3).
        self._caches.setdefault(colo, {})[key] = _CacheEntry(v, now + DEFAULT_CACHE_TTL)

    # -- list ------------------------------------------------------------------------------
    async def list(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``{"keys": [{"name", "expiration"?, "metadata"?}], "list_complete", "cursor"?}``."""
        opts = init_options(args, kwargs)
        prefix = opts.get("prefix") or ""
        limit = opts.get("limit", MAX_LIST_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise JsException("Error", f"KV LIST failed: 400 Invalid key_count_limit of {limit}.")
        after = ""
        cursor = opts.get("cursor")
        if cursor:
            try:
                after = base64.urlsafe_b64decode(cursor.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise JsException("Error", "KV LIST failed: 400 Invalid cursor.") from None
        self._emu.counters.kv_lists += 1
        await self._io()
        colo = self._colo()
        names = sorted(k for k in self._versions if k.startswith(prefix) and k > after)
        live = [(k, v) for k in names if (v := self._live(self._central(k, colo))) is not None]
        page = live[:limit]
        keys: list[dict[str, Any]] = []
        for name, v in page:
            item: dict[str, Any] = {"name": name}
            if v.expiration is not None:
                item["expiration"] = int(v.expiration)
            if v.metadata is not None:
                item["metadata"] = json.loads(json.dumps(v.metadata))
            keys.append(item)
        complete = len(live) <= limit
        out: dict[str, Any] = {"keys": keys, "list_complete": complete, "cacheStatus": None}
        if not complete:
            out["cursor"] = base64.urlsafe_b64encode(page[-1][0].encode()).decode()
        return out

    # -- emulator helpers ------------------------------------------------------------------
    def clear_caches(self) -> None:
        """Forget every colo's cache (e.g. to model an edge restart)."""
        self._caches.clear()


def _type_opts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    # get(key, "json") is the positional form of get(key, {"type": "json"}).
    if args and isinstance(args[0], str):
        return init_options(args[1:], {"type": args[0], **kwargs})
    return init_options(args, kwargs)


def _decode(data: bytes | None, typ: str) -> Any:
    assert data is not None
    if typ == "text":
        return data.decode("utf-8", errors="replace")
    if typ == "json":
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise JsException("SyntaxError", f"Unexpected token in JSON: {exc}") from None
    if typ == "arrayBuffer":
        return bytes(data)
    if typ == "stream":

        async def once() -> AsyncIterator[bytes]:
            yield bytes(data)

        return ReadableStream(once())
    raise JsException(
        "TypeError",
        f'Unknown response type. Possible types are "text", '
        f'"arrayBuffer", "json", and "stream". Got "{typ}".',
    )


async def _encode(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, ReadableStream):
        return b"".join([chunk async for chunk in value])
    to_bytes = getattr(value, "to_bytes", None)
    if callable(to_bytes):
        return bytes(to_bytes())
    raise JsException(
        "TypeError",
        "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as "
        "values.",
    )
