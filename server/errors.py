"""One error tree for the server package."""

from __future__ import annotations

from typing import Any


class ServerError(Exception):
    """Base class of every error raised by :mod:`server`."""


class ConfigError(ServerError, ValueError):
    """A bad configuration file or environment override; the message names the key."""


class NotFound(ServerError, LookupError):
    """A site, device or other record named by an operator does not exist."""


class AlreadyExists(ServerError, ValueError):
    """An operator tried to create something that is already there."""


class ApiError(ServerError):
    """An error reply of the sync API: HTTP status, machine code, message, details.

    Rendered as ``{"error": {"code", "message", "details"}}`` (see docs/SYNC_API.md).
    """

    def __init__(self, status: int, code: str, message: str, *,
                 details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}
