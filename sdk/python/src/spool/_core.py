"""What the sync and async clients share and that does no I/O: URLs, request bodies,
the SSE parser, and the timing of long-polls, reconnects and queue-full retries."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import httpx

from ._errors import QueueFull, ServerUnavailable, SpoolError, WaitTimeout
from ._models import Event, JobStatus, format_delay, format_time
from ._version import __version__

log = logging.getLogger("spool")

DEFAULT_URL = "http://127.0.0.1:8005"
API_PREFIX = "/api/v1"

# How long a plain request may take, and how long one long-poll slice of wait() lasts.
DEFAULT_TIMEOUT = 30.0
WAIT_SLICE = 30.0
# A stream with no byte for this long is dead: the server sends a heartbeat every 15 s.
STREAM_READ_TIMEOUT = 45.0
# How long a broken stream is retried without getting a single event through.
RECONNECT_TIMEOUT = 60.0
# How long retry_queue_full keeps trying by default.
QUEUE_FULL_TIMEOUT = 300.0

PRIORITIES = ("urgent", "high", "normal", "low")
SCOPES = ("global", "session", "none")


def normalize_url(url: str | None) -> str:
    """Turn ``host:port``, ``http://host:port/`` or ``.../api/v1`` into ``scheme://host[/prefix]``.

    ``None`` reads ``SPOOL_URL``, else the default ``http://127.0.0.1:8005``.
    """
    if url is None or not url.strip():
        url = os.environ.get("SPOOL_URL", "").strip() or DEFAULT_URL
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"spool: not a server URL: {url!r} (want http://host:port)")
    return url


def resolve_token(token: str | None) -> str | None:
    """Return token, or ``SPOOL_TOKEN`` when token is None; empty means none."""
    if token is None:
        token = os.environ.get("SPOOL_TOKEN")
    token = (token or "").strip()
    return token or None


def default_headers(token: str | None, user_agent: str | None) -> dict[str, str]:
    """Headers sent on every request."""
    h = {
        "Accept": "application/json",
        "User-Agent": user_agent or f"spool-python/{__version__} httpx/{httpx.__version__}",
    }
    if token:
        h["Authorization"] = f"Bearer {token}"
    return h


def run_path(job_id: str, suffix: str = "") -> str:
    """The API path of a run, plus an optional suffix such as ``/cancel``."""
    if not job_id:
        raise ValueError("spool: a run id is required")
    return f"{API_PREFIX}/runs/{quote(job_id, safe='')}{suffix}"


def submit_body(
    recipe: str,
    input: Any = None,
    *,
    priority: str | None = None,
    agent: str | None = None,
    workspace: str | None = None,
    session_id: str | None = None,
    timeout: float | timedelta | None = None,
    max_retries: int | None = None,
    idempotency_key: str | None = None,
    idempotency_scope: str | None = None,
    webhook_url: str | None = None,
    webhook_events: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    run_at: datetime | str | None = None,
    delay: str | float | timedelta | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/runs``. Unset options are left out, so the recipe's
    defaults and then the server's apply."""
    if not recipe:
        raise ValueError("spool: a recipe name is required")
    body: dict[str, Any] = {"recipe_name": recipe}
    if input is not None:
        body["input"] = input
    if priority is not None:
        body["priority"] = priority
    for key, val in (("agent", agent), ("workspace", workspace), ("session_id", session_id),
                     ("idempotency_key", idempotency_key), ("idempotency_scope", idempotency_scope),
                     ("webhook_url", webhook_url)):
        if val is not None:
            body[key] = val
    if timeout is not None:
        secs = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        body["timeout"] = int(math.ceil(secs))
    if max_retries is not None:
        body["max_retries"] = max_retries
    if webhook_events is not None:
        body["webhook_events"] = list(webhook_events)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if config is not None:
        body["config"] = dict(config)
    if run_at is not None:
        body["run_at"] = format_time(run_at)
    if delay is not None:
        body["delay"] = format_delay(delay)
    return body


def list_params(
    *,
    status: str | Iterable[str] | None,
    recipe: str | None,
    agent: str | None,
    workspace: str | None,
    session_id: str | None,
    page_size: int,
    after: str | None,
) -> dict[str, str]:
    """The query of ``GET /api/v1/runs``."""
    if not 1 <= page_size <= 1000:
        raise ValueError("spool: page_size must be from 1 to 1000")
    q: dict[str, str] = {"page_size": str(page_size)}
    if status is not None:
        q["status"] = status if isinstance(status, str) else ",".join(status)
    for key, val in (("recipe_name", recipe), ("agent", agent), ("workspace", workspace),
                     ("session_id", session_id), ("after", after)):
        if val:
            q[key] = val
    return q


def decode_json(resp: httpx.Response) -> Any:
    """The JSON of a successful answer (``None`` for an empty body)."""
    if not resp.content:
        return None
    try:
        return json.loads(resp.content)
    except ValueError as exc:
        raise SpoolError(f"the server answered {resp.status_code} with a body that is not JSON",
                         code="internal", status=resp.status_code) from exc


def transport_error(exc: httpx.HTTPError, url: str) -> ServerUnavailable:
    """The error for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        what = "did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        what = "could not be reached"
    else:
        what = "dropped the connection"
    return ServerUnavailable(f"the Spool server at {url} {what}: {str(exc) or type(exc).__name__}",
                             code="unavailable")


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched Server-Sent Event."""

    id: str | None
    event: str
    data: str


class SSEParser:
    """An incremental parser of the ``text/event-stream`` format, fed one line at a time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Drop a partly received event (after the connection broke)."""
        self._id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SSEMessage | None:
        """Take one line (without its end of line); return an event when one is complete."""
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data and self._id is None and not self._event:
                return None
            msg = SSEMessage(self._id, self._event or "message", "\n".join(self._data))
            self._id, self._event, self._data = None, "", []
            return msg
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def event_from_message(msg: SSEMessage) -> Event | None:
    """The run event an SSE message carries; ``None`` for heartbeats and empty messages."""
    if msg.event == "heartbeat" or not msg.data:
        return None
    try:
        data = json.loads(msg.data)
    except ValueError as exc:
        raise SpoolError(f"the event stream sent data that is not JSON: {msg.data[:120]!r}",
                         code="internal") from exc
    if not isinstance(data, dict):
        return None
    seq: int | None = None
    if msg.id is not None and msg.id.strip().isdigit():
        seq = int(msg.id.strip())
    ev = Event.from_dict(data, event_type=msg.event if msg.event != "message" else None, seq=seq)
    if ev.seq <= 0:
        return None  # not a stored event (no sequence number): nothing to resume from
    return ev


class Deadline:
    """The time budget of one ``wait()``: slices for the long-poll, and the end."""

    def __init__(self, job_id: str, timeout_ms: float | None, slice_seconds: float = WAIT_SLICE) -> None:
        if timeout_ms is not None and timeout_ms < 0:
            raise ValueError("spool: timeout_ms must not be negative")
        self.job_id = job_id
        self.timeout_ms = timeout_ms
        self.slice_seconds = min(max(slice_seconds, 1.0), 300.0)
        self.end = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        self.last: JobStatus | None = None
        self._quick = 0
        self._polls = 0

    def remaining(self) -> float | None:
        """Seconds left, or None without a deadline."""
        return None if self.end is None else self.end - time.monotonic()

    def next_slice(self) -> float:
        """Seconds the next long-poll may be held; raises WaitTimeout when time is up.
        The first poll always happens, so wait(timeout_ms=0) returns a finished run."""
        self._polls += 1
        left = self.remaining()
        if left is None:
            return self.slice_seconds
        if left <= 0:
            if self._polls == 1:
                return 0.0
            raise self.timeout()
        return min(self.slice_seconds, left)

    def timeout(self) -> WaitTimeout:
        """The error for a wait that ran out of time."""
        state = f" (still {self.last.status})" if self.last else ""
        return WaitTimeout(f"run {self.job_id} did not finish within {self.timeout_ms:g} ms{state}",
                           job_id=self.job_id, last_status=self.last)

    def pause_after(self, window: float, elapsed: float) -> float:
        """Seconds to sleep before the next poll. A server (or proxy) that answers
        long-polls early must not turn the loop into a busy one."""
        if elapsed >= window / 2:
            self._quick = 0
            return 0.0
        self._quick += 1
        pause = min(self._quick * 0.2, 2.0)
        left = self.remaining()
        return pause if left is None else max(0.0, min(pause, left))


def poll_query(window: float) -> dict[str, str]:
    """The query of one long-poll of ``window`` seconds."""
    return {"timeout": f"{max(window, 0.001):.3f}"}


def poll_timeout(window: float) -> httpx.Timeout:
    """The HTTP timeout of one long-poll: the window plus a margin for the answer."""
    return httpx.Timeout(window + 5.0, connect=10.0)


class Reconnect:
    """When to reconnect a broken event stream: at once the first time, then with growing
    pauses, giving up after ``budget`` seconds without one event getting through."""

    def __init__(self, budget: float = RECONNECT_TIMEOUT) -> None:
        self.budget = budget
        self._since: float | None = None
        self._failures = 0

    def progressed(self) -> None:
        """An event got through: start afresh."""
        self._since = None
        self._failures = 0

    def pause(self, cause: BaseException | None) -> float:
        """Seconds to wait before reconnecting; raises ServerUnavailable past the budget."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since > self.budget:
            err = ServerUnavailable(
                f"the event stream could not be resumed for {self.budget:g} s: {cause or 'closed early'}",
                code="unavailable")
            raise err from cause
        self._failures += 1
        if self._failures == 1:
            return 0.0
        base: float = min(0.1 * 2.0 ** (self._failures - 2), 2.0)
        return base * (0.5 + random.random() / 2)


class QueueFullRetry:
    """How ``retry_queue_full`` waits: as long as the server's Retry-After says, for at
    most ``budget`` seconds in all."""

    def __init__(self, enabled: bool, budget: float) -> None:
        self.enabled = enabled
        self.end = time.monotonic() + budget

    def pause(self, err: QueueFull) -> float:
        """Seconds to wait before trying again; re-raises err when it may not."""
        if not self.enabled:
            raise err
        delay = err.retry_after if err.retry_after is not None else 1.0
        delay = max(delay, 0.05)
        if time.monotonic() + delay > self.end:
            raise err
        log.info("spool: queue full; retrying in %.3g s", delay)
        return delay
