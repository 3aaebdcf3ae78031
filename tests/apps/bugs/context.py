"""The bugs app's context: the user comes from the `user` cookie."""

from typing import Any


def context(request: Any) -> dict[str, Any]:
    return {"user": request.cookies.get("user", "anonymous")}
