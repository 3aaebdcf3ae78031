"""Telefunctions of the FastAPI example: they see the user FastAPI's middleware authenticated."""

from __future__ import annotations

from notes_store import MAX_CHARS, NOTES

from telefunc import Abort, get_context


def _user() -> str:
    user = get_context()["user"]
    if user is None:
        raise Abort({"error": "sign in first"})
    return str(user)


async def whoami() -> str | None:
    """The signed-in user's name (``None`` when signed out)."""
    return get_context()["user"]


async def user_agent() -> str | None:
    """A header of the call, read from the Starlette request in the context."""
    return get_context()["request"].headers.get("user-agent")


async def add_note(text: str) -> list[str]:
    """Store a note for the signed-in user; returns their notes."""
    user = _user()
    if not 0 < len(text) <= MAX_CHARS:
        raise Abort({"error": f"a note has 1 to {MAX_CHARS} characters"})
    NOTES[user].append(text)
    return list(NOTES[user])
