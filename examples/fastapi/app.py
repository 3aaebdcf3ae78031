"""A FastAPI app that mounts telefunc next to its own routes.

Run it with ``uvicorn app:app`` from this folder (``pip install fastapi 'telefunc[server]'``).

* ``POST /api/login`` (a FastAPI route) signs the user in: it sets a signed ``session`` cookie.
* ``GET /api/me`` and ``GET /api/notes`` are FastAPI routes using the ``current_user``
  dependency.
* ``/_telefunc`` is telefunc, mounted at ``/`` after the routes: telefunctions in
  ``telefunc/`` read the same user through ``get_context()``.

Authentication happens once, in Starlette's ``AuthenticationMiddleware``, for FastAPI routes and
telefunctions alike: the middleware puts the user in the ASGI scope, FastAPI's dependency reads
it from its ``Request``, and telefunc's ``context`` factory builds a Starlette ``Request`` from
the same scope.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Response
from notes_store import NOTES
from pydantic import BaseModel
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request

from telefunc.asgi import TelefuncApp
from telefunc.asgi.http import HttpRequest

HERE = Path(__file__).resolve().parent
#: Signs the session cookie. A real app reads it from its settings.
SECRET = b"change me: the session cookie signing key"
USERS = {"ada": "lovelace", "bob": "builder"}  # name -> password


def sign(user: str) -> str:
    mac = hmac.new(SECRET, user.encode(), hashlib.sha256).hexdigest()
    return f"{user}.{mac}"


def verify(cookie: str) -> str | None:
    user, _, mac = cookie.rpartition(".")
    expected = hmac.new(SECRET, user.encode(), hashlib.sha256).hexdigest()
    return user if user in USERS and hmac.compare_digest(mac, expected) else None


class SessionCookieBackend(AuthenticationBackend):
    """The user named by a valid ``session`` cookie, for every request and WebSocket."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        user = verify(conn.cookies.get("session", ""))
        if user is None:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(user)


def current_user(request: Request) -> str | None:
    """The FastAPI dependency: the signed-in user's name, or ``None``."""
    user = request.user
    return user.username if user.is_authenticated else None


CurrentUser = Annotated[str | None, Depends(current_user)]


def telefunc_context(request: HttpRequest) -> dict[str, Any]:
    """What ``get_context()`` returns in telefunctions: the Starlette request and its user."""
    starlette_request = Request(request.scope)
    return {"request": starlette_request, "user": current_user(starlette_request)}


telefunc_app = TelefuncApp(HERE / "telefunc", context=telefunc_context)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await telefunc_app.hub.aclose()  # a mounted app gets no lifespan events of its own


app = FastAPI(lifespan=lifespan)
app.add_middleware(AuthenticationMiddleware, backend=SessionCookieBackend())


class Login(BaseModel):
    user: str
    password: str


@app.post("/api/login")
def login(body: Login, response: Response) -> dict[str, str]:
    if USERS.get(body.user) != body.password:
        raise HTTPException(status_code=401, detail="wrong user or password")
    response.set_cookie("session", sign(body.user), httponly=True, samesite="lax")
    return {"user": body.user}


@app.get("/api/me")
def me(user: CurrentUser) -> dict[str, str | None]:
    return {"user": user}


@app.get("/api/notes")
def notes(user: CurrentUser) -> list[str]:
    if user is None:
        raise HTTPException(status_code=401, detail="sign in first")
    return list(NOTES.get(user, []))


# Last: everything the routes above do not answer goes to telefunc (POST /_telefunc and its
# WebSocket). `unauthenticated` users still reach it; telefunctions decide what they allow.
app.mount("/", telefunc_app)
