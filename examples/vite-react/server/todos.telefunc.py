"""The todo list: one shared, in-memory list (a demo; a real app keeps it in a database).

Every input is bounded: at most ``MAX_TODOS`` todos of at most ``MAX_TEXT`` characters each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypedDict

from telefunc import Abort

MAX_TODOS = 200
MAX_TEXT = 200
#: Seconds between the lines of ``report()``, so the page visibly streams them.
REPORT_PACE = 0.05


class Todo(TypedDict):
    id: int
    text: str
    done: bool


_todos: list[Todo] = []
_next_id = 1


async def list_todos() -> list[Todo]:
    """Every todo, oldest first."""
    return list(_todos)


async def add_todo(text: str) -> Todo:
    """Add a todo; aborts with a reason for an empty or too long text, or a full list."""
    global _next_id
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise Abort({"reason": f"a todo has 1 to {MAX_TEXT} characters"})
    if len(_todos) >= MAX_TODOS:
        raise Abort({"reason": f"the list is full ({MAX_TODOS} todos)"})
    todo: Todo = {"id": _next_id, "text": text, "done": False}
    _next_id += 1
    _todos.append(todo)
    return todo


async def toggle_todo(todo_id: int) -> Todo:
    """Flip a todo between done and not done."""
    for todo in _todos:
        if todo["id"] == todo_id:
            todo["done"] = not todo["done"]
            return todo
    raise Abort({"reason": f"no todo {todo_id}"})


async def report() -> AsyncIterator[str]:
    """A streamed result: one line per todo as it is "checked", then a summary line."""
    snapshot = list(_todos)
    for todo in snapshot:
        await asyncio.sleep(REPORT_PACE)
        yield f"{'done' if todo['done'] else 'open'}: {todo['text']}"
    done = sum(todo["done"] for todo in snapshot)
    yield f"{done} of {len(snapshot)} done"
