"""Unguessable identifiers for what a client addresses by id (sessions, channels, streams).

A session id is the only thing that lets a reconnecting client take its channels back, and a
channel id is handed out in one client's HTTP response: both must be impossible to guess. They
are drawn from :mod:`secrets` (122 random bits) and keep the UUID-4 text form the official client
has always received.
"""

from __future__ import annotations

import secrets
import uuid

__all__ = ["random_id"]


def random_id() -> str:
    """A new random id: 122 bits from :mod:`secrets`, formatted as a version-4 UUID."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
