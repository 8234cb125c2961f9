"""Errors raised by actions and selectors; the API and views map them to HTTP answers."""

from __future__ import annotations


class KefuError(Exception):
    """Base class. ``message`` is safe to show to the caller."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(KefuError):
    status_code = 422


class NotFound(KefuError):
    """Missing, or not visible to the acting user: the two are deliberately indistinguishable."""

    status_code = 404


class Forbidden(KefuError):
    status_code = 403


class Conflict(KefuError):
    status_code = 409
