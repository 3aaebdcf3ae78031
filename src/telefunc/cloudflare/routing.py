"""Session affinity: which Durable Object serves a client (pure Python, no ``js``).

A client's first request mints a *session token* ``<object name>:<uuid>`` and picks an object in
the request's region: ``<instance>-shard-<region>-<n>`` with ``n`` random below the region's
scale. The token is stored in KV as ``session:<token>`` → ``{"s": <object name>, "b": <region>}``
with a 24 h TTL and travels back in the ``x-telefunc-session`` response header; the client sends it
back in that header (or ``?session=`` on URLs that cannot carry headers). A token that is unknown,
expired, or whose record is unreadable simply starts a new session — never an error.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from telefunc.cloudflare.regions import REGIONS, Scale, normalize_scale, resolve_region
from telefunc.wire.ids import random_id

__all__ = [
    "BUCKET_HEADER",
    "SESSION_HEADER",
    "SESSION_KEY_PREFIX",
    "SESSION_QUERY",
    "SESSION_TTL",
    "SHARD_HEADER",
    "Router",
    "SessionRecord",
    "session_key",
    "shard_name",
]

SESSION_HEADER = "x-telefunc-session"
"""Response and request header carrying the session token."""
SESSION_QUERY = "session"
"""Query parameter accepted instead of the header."""
SHARD_HEADER = "x-telefunc-shard"
"""Set on requests forwarded to an object: the object's own name."""
BUCKET_HEADER = "x-telefunc-broadcast-bucket"
"""Set on requests forwarded to an object: the object's region."""
SESSION_KEY_PREFIX = "session:"
"""KV key prefix of session records."""
SESSION_TTL = 86_400
"""Lifetime of a session record in KV, seconds (24 h)."""


def shard_name(instance_name: str, region: str, ordinal: int) -> str:
    """The name of session object ``ordinal`` of ``region``: ``<instance>-shard-<region>-<n>``."""
    return f"{instance_name}-shard-{region}-{ordinal}"


def session_key(token: str) -> str:
    """The KV key of a session token."""
    return SESSION_KEY_PREFIX + token


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """Where a session lives: the object name and its region."""

    shard: str
    region: str

    def to_json(self) -> str:
        """The KV value: ``{"s": <object name>, "b": <region>}``."""
        return json.dumps({"s": self.shard, "b": self.region}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> SessionRecord | None:
        """Parse a KV value; ``None`` for anything unusable (treated as an unknown token)."""
        if not text:
            return None
        try:
            value: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        shard, region = value.get("s"), value.get("b")
        if not isinstance(shard, str) or not shard or region not in REGIONS:
            return None
        return cls(shard, region)


@dataclass(frozen=True, slots=True)
class Target:
    """The routing decision for one request."""

    token: str
    record: SessionRecord
    #: The token was minted by this request (its record must be written to KV).
    new: bool


class Router:
    """Routing configuration: instance name, per-region scale, fallback region.

    ``rng`` and ``make_uuid`` are injectable so tests can pin the random shard choice. Without
    them randomness is drawn on first use, never at construction: a Python Worker builds its
    ``Telefunc`` while the module loads, when workerd forbids entropy.
    """

    __slots__ = ("counts", "instance_name", "location_fallback", "make_uuid", "rng")

    def __init__(
        self,
        instance_name: str = "telefunc",
        scale: Scale = 1,
        location_fallback: str = "weur",
        *,
        rng: random.Random | None = None,
        make_uuid: Callable[[], str] | None = None,
    ) -> None:
        self.instance_name = instance_name
        self.location_fallback = location_fallback
        #: Objects per region (0: requests from that region go to the fallback).
        self.counts = normalize_scale(scale, location_fallback)
        self.rng = rng
        self.make_uuid = make_uuid or random_id

    def shard_names(self, region: str) -> list[str]:
        """Every session object name of ``region``."""
        return [
            shard_name(self.instance_name, region, n) for n in range(self.counts.get(region, 0))
        ]

    def new_session(self, cf: Mapping[str, Any] | None) -> Target:
        """Mint a token for a request from ``cf`` (its ``colo``/``continent``)."""
        region = resolve_region(cf, self.counts, self.location_fallback)
        count = self.counts[region]
        ordinal = self.rng.randrange(count) if self.rng is not None else secrets.randbelow(count)
        shard = shard_name(self.instance_name, region, ordinal)
        return Target(f"{shard}:{self.make_uuid()}", SessionRecord(shard, region), new=True)

    def shard_region(self, shard: str) -> str | None:
        """The region of ``shard`` if it names a session object of the current scale."""
        prefix = f"{self.instance_name}-shard-"
        if not shard.startswith(prefix):
            return None
        region, _, ordinal = shard[len(prefix) :].rpartition("-")
        if region not in REGIONS or not ordinal.isdigit() or str(int(ordinal)) != ordinal:
            return None
        return region if int(ordinal) < self.counts.get(region, 0) else None

    def route(self, token: str | None, stored: str | None, cf: Mapping[str, Any] | None) -> Target:
        """Keep the session of ``token`` when its KV record ``stored`` is usable, else mint one.

        A token without a record (unknown, expired, or written in another colo and not yet
        propagated: KV takes up to 60 s) gets a new token. When the old token names an object
        that exists under the current scale, the new session stays on that object, so a client
        whose next request lands in another colo keeps its channels; otherwise the object is
        picked from the request's location.
        """
        if token:
            record = SessionRecord.from_json(stored)
            if record is not None:
                return Target(token, record, new=False)
            shard = token.rpartition(":")[0]
            region = self.shard_region(shard)
            if region is not None:
                record = SessionRecord(shard, region)
                return Target(f"{shard}:{self.make_uuid()}", record, new=True)
        return self.new_session(cf)
