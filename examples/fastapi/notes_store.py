"""The example's storage: each user's notes, shared by the FastAPI routes and the telefunctions.

Bounded like everything a client can grow: at most ``MAX_NOTES`` notes of ``MAX_CHARS``
characters per user (users are a fixed set).
"""

from __future__ import annotations

from collections import defaultdict, deque

MAX_NOTES = 100
MAX_CHARS = 500

NOTES: defaultdict[str, deque[str]] = defaultdict(lambda: deque(maxlen=MAX_NOTES))
