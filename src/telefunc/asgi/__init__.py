"""The ASGI adapter: :class:`TelefuncApp`, served by uvicorn or mounted in Starlette/FastAPI."""

from telefunc.asgi.app import ContextFactory, TelefuncApp
from telefunc.asgi.http import HttpRequest

__all__ = ["ContextFactory", "HttpRequest", "TelefuncApp"]
