"""Typed exceptions, mapped from the server's problem documents (RFC 9457)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "SpoolError",
    "NotFound",
    "Conflict",
    "QueueFull",
    "ValidationError",
    "Unauthorized",
    "Forbidden",
    "TooLarge",
    "ServerUnavailable",
    "FieldError",
    "WaitTimeout",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field of a refused request and why it was refused."""

    field: str
    reason: str


class SpoolError(Exception):
    """Base of every error the server answers or the client reports.

    ``code`` is the server's stable error code (``not_found``, ``conflict``, ...), ``status``
    the HTTP status (0 when no answer arrived), ``detail`` the server's message and
    ``problem`` the whole problem document as received.
    """

    def __init__(
        self,
        detail: str,
        *,
        code: str = "internal",
        status: int = 0,
        title: str = "",
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status = status
        self.title = title
        self.problem: dict[str, Any] = dict(problem or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.code else self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, detail={self.detail!r})"


class NotFound(SpoolError):
    """No such run or recipe (HTTP 404), or one the token may not see."""


class Conflict(SpoolError):
    """The run's state does not allow the action (HTTP 409).

    ``run_status`` is the run's state as the server reported it (``running``, ``succeeded``, ...).
    """

    def __init__(self, detail: str, *, run_status: str | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.run_status = run_status


class QueueFull(SpoolError):
    """The server's queue is full (HTTP 503 ``queue_full``); nothing was accepted.

    ``retry_after`` is how many seconds the server asks to wait before trying again.
    """

    def __init__(self, detail: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.retry_after = retry_after


class ValidationError(SpoolError, ValueError):
    """The request was refused as invalid (400 ``invalid``, 422 ``unprocessable`` or
    ``unknown_recipe``). ``fields`` names each bad field and why."""

    def __init__(self, detail: str, *, fields: list[FieldError] | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.fields: list[FieldError] = list(fields or [])


class Unauthorized(SpoolError):
    """The API token is missing or not valid (HTTP 401)."""


class Forbidden(SpoolError):
    """The token may not do this, e.g. act on another workspace (HTTP 403)."""


class TooLarge(SpoolError):
    """The request body or a value in it is over the server's size limit (HTTP 413)."""


class ServerUnavailable(SpoolError):
    """The server could not be reached, dropped the connection, did not answer in time, or
    answered 503 ``unavailable`` (shutting down or not ready)."""


class WaitTimeout(TimeoutError):
    """``wait(timeout_ms=...)`` ran out of time before the run finished. The run goes on.

    It is the builtin :class:`TimeoutError`; ``job_id`` names the run and ``last_status`` is
    its state as last seen (``None`` if no answer arrived).
    """

    def __init__(self, message: str, *, job_id: str, last_status: Any = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.last_status = last_status


# Codes of the HTTP statuses a non-problem answer (a proxy's page, say) may carry.
_STATUS_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "unprocessable",
    429: "rate_limited",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}

_CODE_CLASSES: dict[str, type[SpoolError]] = {
    "not_found": NotFound,
    "conflict": Conflict,
    "queue_full": QueueFull,
    "invalid": ValidationError,
    "unprocessable": ValidationError,
    "unknown_recipe": ValidationError,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "too_large": TooLarge,
    "unavailable": ServerUnavailable,
}


def _parse_retry_after(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    try:
        secs = float(str(value).strip())
    except ValueError:
        return None  # an HTTP date: not sent by Spool
    return secs if secs >= 0 else None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> SpoolError:
    """Build the typed exception for a non-2xx answer."""
    problem: dict[str, Any] = {}
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        problem = decoded
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    if not code:
        code = _STATUS_CODES.get(status, "internal")
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail:
        text = body.decode("utf-8", "replace").strip()
        detail = text[:300] if text and not problem else f"HTTP {status}"
    title = problem.get("title") if isinstance(problem.get("title"), str) else ""
    kw: dict[str, Any] = {"code": code, "status": status, "title": title, "problem": problem}
    cls = _CODE_CLASSES.get(code, SpoolError)
    if cls is QueueFull:
        retry_after = _parse_retry_after(problem.get("retry_after"))
        if retry_after is None:
            retry_after = _parse_retry_after(headers.get("retry-after"))
        return QueueFull(detail, retry_after=retry_after, **kw)
    if cls is Conflict:
        rs = problem.get("run_status")
        return Conflict(detail, run_status=rs if isinstance(rs, str) else None, **kw)
    if cls is ValidationError:
        fields = []
        for item in problem.get("errors") or []:
            if isinstance(item, dict):
                fields.append(FieldError(str(item.get("field", "")), str(item.get("reason", ""))))
        return ValidationError(detail, fields=fields, **kw)
    return cls(detail, **kw)
