"""Builds each call's context: the user name from the `user` cookie (set by the page)."""

from __future__ import annotations

from typing import Any


def context(request: Any) -> dict[str, Any]:
    name = request.cookies.get("user", "").strip()[:40]
    return {"user": name or "anonymous"}
