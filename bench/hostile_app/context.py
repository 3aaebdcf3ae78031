"""The bench app's context: the visitor's cookie, which a cross-site request carries along."""

from __future__ import annotations

from typing import Any


def context(request: Any) -> dict[str, Any]:
    return {"cookie": request.headers.get("cookie")}
