"""The ASGI adapter: :class:`TelefuncApp`, served by uvicorn or mounted in Starlette/FastAPI."""

from telefunc.asgi.app import ContextFactory, TelefuncApp
from telefunc.asgi.http import HttpRequest
from telefunc.asgi.uvicorn_settings import uvicorn_settings

__all__ = ["ContextFactory", "HttpRequest", "TelefuncApp", "uvicorn_settings"]
