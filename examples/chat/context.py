"""Builds each call's context: the user name from the `user` cookie (set by the page)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

MAX_NAME = 40


def context(request: Any) -> dict[str, Any]:
    """``{"user": name}`` from the ``user`` cookie (``"anonymous"`` without one).

    The page stores the name with ``encodeURIComponent``, so it is decoded here.
    """
    name = unquote(request.cookies.get("user", "")).strip()[:MAX_NAME]
    return {"user": name or "anonymous"}
