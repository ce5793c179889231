"""The one exception hierarchy of CityWatch.

Every error a user can cause derives from :class:`CityWatchError`.  The CLI catches that base
and prints ``Error: message`` with exit code 1 (2 for an :class:`OptionError`, a usage error);
the API maps each subclass to an HTTP status and the canonical JSON error body (see
:mod:`citywatch.api.errors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "AuthenticationError",
    "CityWatchError",
    "ConflictError",
    "DataError",
    "InsufficientPrecisionError",
    "NotFoundError",
    "OptionError",
    "PermissionDeniedError",
    "SnapError",
    "SolverError",
    "TooManyRequestsError",
    "ValidationError",
    "writes_to",
]


class CityWatchError(Exception):
    """Base of every error that CityWatch reports to a user."""

    #: HTTP status the API answers with for this kind of error.
    status_code: int = 400
    #: Stable machine-readable code used in the canonical JSON error body.
    code: str = "error"

    def __init__(
        self, message: str, *, field: str | None = None, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        #: Optional per-item results (e.g. one per unit of a refused batch), sent as ``details``.
        self.details = details

    def as_item(self) -> dict[str, Any]:
        """The error of one item of a batch (a fix, a sighting): status, code, message, field."""
        return {
            "status": self.status_code,
            "code": self.code,
            "message": self.message,
            "field": self.field,
        }


class ValidationError(CityWatchError):
    """A value given by the user is invalid (bad coordinate, unknown category, ...)."""

    status_code = 422
    code = "validation_error"


class OptionError(ValidationError):
    """Command-line options that are missing, conflict or cannot work together: a usage
    error, so the CLI exits with code 2 like for an unknown option."""

    code = "option_error"


class SnapError(ValidationError):
    """A point lies too far from the road network (or outside the city pack)."""

    code = "off_network"


class DataError(CityWatchError):
    """An input file or city pack is malformed or inconsistent."""

    code = "data_error"


class InsufficientPrecisionError(DataError):
    """The data's time precision is too coarse for the requested statistic."""

    code = "insufficient_precision"


class NotFoundError(CityWatchError):
    """A requested object (pack, incident, unit, user, ...) does not exist."""

    status_code = 404
    code = "not_found"


class ConflictError(CityWatchError):
    """The request conflicts with the current state (unit already assigned, ...)."""

    status_code = 409
    code = "conflict"


class AuthenticationError(CityWatchError):
    """Missing or invalid credentials."""

    status_code = 401
    code = "not_authenticated"


class PermissionDeniedError(CityWatchError):
    """The user is authenticated but their role or jurisdiction does not allow this."""

    status_code = 403
    code = "forbidden"


class SolverError(CityWatchError):
    """An optimisation or numerical solver did not reach a proven answer."""

    code = "solver_error"


class TooManyRequestsError(CityWatchError):
    """Too many attempts (logins): try again after ``retry_after_s`` seconds."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: float, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


@contextmanager
def writes_to(path: str | Path, what: str = "") -> Iterator[None]:
    """Turn an ``OSError`` of the block (a folder, a missing or read-only place) into a
    :class:`DataError` that names the file: ``cannot write [what ]path: reason``."""
    try:
        yield
    except OSError as exc:
        label = f"{what} {path}" if what else str(path)
        raise DataError(f"cannot write {label}: {exc.strerror or exc}") from None
