"""The data the API answers with, as frozen dataclasses with parsed datetimes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

__all__ = [
    "JobStatus",
    "JobAccepted",
    "JobResult",
    "Progress",
    "Event",
    "Page",
    "Stats",
    "Recipe",
    "RunFailed",
    "seed_state",
    "parse_datetime",
    "TERMINAL_STATUSES",
]

# Spool's states that never change again.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

# Spool's states in the Job SDK's words (pending, running, completed, failed, cancelled).
_SEED_STATES = {
    "queued": "pending",
    "scheduled": "pending",
    "paused": "pending",
    "waiting": "pending",
    "running": "running",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


def seed_state(status: str) -> str:
    """Map a Spool status to the Job SDK's state: queued, scheduled and paused are
    ``pending``; succeeded is ``completed``; running, failed and cancelled stay."""
    return _SEED_STATES.get(status, status)


_TS = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_datetime(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp as the server writes it (up to nanoseconds, ``Z`` or an
    offset) into an aware datetime. ``None`` and ``""`` give ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    m = _TS.match(str(value).strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    day, clock, frac, zone = m.groups()
    micros = (frac or "0")[:6].ljust(6, "0")
    if zone is None or zone in ("Z", "z"):
        tz = "+00:00"
    elif ":" not in zone:
        tz = zone[:3] + ":" + zone[3:]
    else:
        tz = zone
    return datetime.fromisoformat(f"{day}T{clock}.{micros}{tz}")


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) and v != "" else None


def _int(v: Any, default: int = 0) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def _opt_float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a run has come, as its recipe reported."""

    percentage: float = 0.0
    current_step: str | None = None
    steps_completed: int = 0
    steps_total: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Progress:
        """Build from the API's ``progress`` object (or an event's top-level fields)."""
        if not d:
            return cls()
        return cls(
            percentage=_opt_float(d.get("percentage")) or 0.0,
            current_step=_opt_str(d.get("current_step")),
            steps_completed=_int(d.get("steps_completed")),
            steps_total=_int(d.get("steps_total")),
        )


class RunFailed(Exception):
    """Raised by :meth:`JobResult.raise_for_status` when the run failed or was cancelled."""

    def __init__(self, result: JobResult) -> None:
        what = result.error or result.status
        super().__init__(f"run {result.id} {result.status}: {what}")
        self.result = result
        self.error_code = result.error_code


@dataclass(frozen=True, slots=True)
class JobResult:
    """The outcome of a finished run: what :meth:`Job.wait` and :meth:`Job.result` return.

    ``value`` is the run's result exactly as the recipe produced it (any JSON), ``output`` the
    same value, or its ``"output"`` member when the result is an object that has one (as
    the ``llm`` recipe's and PraisonAI agents' results do). ``state`` is in the Job SDK's words
    (``completed``, ``failed``, ``cancelled``), ``status`` in Spool's.
    """

    id: str
    state: str
    status: str
    value: Any = None
    error: str | None = None
    error_code: str | None = None
    attempt: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    wait_seconds: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.status == "succeeded"

    @property
    def output(self) -> Any:
        """The result's ``output`` member when it has one, else the whole result."""
        if isinstance(self.value, dict) and "output" in self.value:
            return self.value["output"]
        return self.value

    def raise_for_status(self) -> JobResult:
        """Return self when the run succeeded; raise :class:`RunFailed` otherwise."""
        if not self.ok:
            raise RunFailed(self)
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobResult:
        """Build from a run object or a ``/result`` answer."""
        status = str(d.get("status", ""))
        metrics = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
        assert isinstance(metrics, dict)
        wait = _opt_float(d.get("wait_seconds"))
        if wait is None:
            wait = _opt_float(metrics.get("wait_seconds"))
        return cls(
            id=str(d.get("job_id") or d.get("run_id") or ""),
            state=seed_state(status),
            status=status,
            value=d.get("result"),
            error=_opt_str(d.get("error")),
            error_code=_opt_str(d.get("error_code")),
            attempt=_int(d.get("attempt", metrics.get("attempt"))),
            created_at=parse_datetime(d.get("created_at")),
            started_at=parse_datetime(d.get("started_at")),
            completed_at=parse_datetime(d.get("completed_at")),
            duration_seconds=_opt_float(d.get("duration_seconds")),
            wait_seconds=wait,
        )


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A run's state as the server last reported it.

    The Job SDK's fields come first: ``state`` is one of ``pending``, ``running``,
    ``completed``, ``failed``, ``cancelled``; ``result`` is the :class:`JobResult` once the
    run has finished (``None`` before). Spool's own fields follow: ``status`` is the exact
    state (``queued``, ``scheduled``, ``running``, ``paused``, ``succeeded``, ``failed``,
    ``cancelled``). ``raw`` is the run object as received.
    """

    id: str
    state: str
    result: JobResult | None
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    progress: Progress
    status: str
    recipe: str = ""
    agent: str = ""
    workspace: str = ""
    session_id: str = ""
    priority: str = "normal"
    attempt: int = 0
    max_retries: int = 0
    error_code: str | None = None
    timeout_sec: int = 0
    input: Any = None
    config: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    retry_of: str | None = None
    idempotency_key: str | None = None
    webhook_url: str | None = None
    run_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    duration_seconds: float | None = None
    wait_seconds: float | None = None
    retry_after: float | None = None
    node: str | None = None
    schedule_id: str | None = None
    scheduled_for: datetime | None = None
    poll_url: str | None = None
    stream_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the run has finished (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @property
    def value(self) -> Any:
        """The run's result as the recipe produced it (``None`` until it succeeded)."""
        return self.raw.get("result")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobStatus:
        """Build from a run object of the API."""
        status = str(d.get("status", ""))
        meta = d.get("metadata")
        return cls(
            id=str(d.get("job_id") or d.get("run_id") or ""),
            state=seed_state(status),
            result=JobResult.from_dict(d) if status in TERMINAL_STATUSES else None,
            error=_opt_str(d.get("error")),
            created_at=parse_datetime(d.get("created_at")),
            started_at=parse_datetime(d.get("started_at")),
            completed_at=parse_datetime(d.get("completed_at")),
            progress=Progress.from_dict(d.get("progress") if isinstance(d.get("progress"), dict) else None),
            status=status,
            recipe=str(d.get("recipe_name") or ""),
            agent=str(d.get("agent") or ""),
            workspace=str(d.get("workspace") or ""),
            session_id=str(d.get("session_id") or ""),
            priority=str(d.get("priority") or "normal"),
            attempt=_int(d.get("attempt")),
            max_retries=_int(d.get("max_retries")),
            error_code=_opt_str(d.get("error_code")),
            timeout_sec=_int(d.get("timeout_sec")),
            input=d.get("input"),
            config=d.get("config"),
            metadata=dict(meta) if isinstance(meta, dict) else {},
            retry_of=_opt_str(d.get("retry_of")),
            idempotency_key=_opt_str(d.get("idempotency_key")),
            webhook_url=_opt_str(d.get("webhook_url")),
            run_at=parse_datetime(d.get("run_at")),
            cancel_requested_at=parse_datetime(d.get("cancel_requested_at")),
            duration_seconds=_opt_float(d.get("duration_seconds")),
            wait_seconds=_opt_float(d.get("wait_seconds")),
            retry_after=_opt_float(d.get("retry_after")),
            node=_opt_str(d.get("node")),
            schedule_id=_opt_str(d.get("schedule_id")),
            scheduled_for=parse_datetime(d.get("scheduled_for")),
            poll_url=_opt_str(d.get("poll_url")),
            stream_url=_opt_str(d.get("stream_url")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class JobAccepted:
    """The server's answer to a submit.

    ``state`` is ``pending`` for a new run. ``existing`` is true when an idempotency key
    matched a run that already existed (HTTP 200): then no run was created and ``state`` is
    that run's current state.
    """

    id: str
    state: str
    status: str
    created_at: datetime | None
    poll_url: str | None
    stream_url: str | None
    existing: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, existing: bool = False) -> JobAccepted:
        """Build from the run object a submit answered with."""
        status = str(d.get("status", ""))
        return cls(
            id=str(d.get("job_id") or d.get("run_id") or ""),
            state=seed_state(status),
            status=status,
            created_at=parse_datetime(d.get("created_at")),
            poll_url=_opt_str(d.get("poll_url")),
            stream_url=_opt_str(d.get("stream_url")),
            existing=existing,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One item of a run's stream. ``seq`` starts at 1 and grows by one per event.

    ``type`` is ``status``, ``progress``, ``output``, ``log``, ``result``, ``error`` or
    ``cancelled``; ``text`` is set for output and log, ``status`` for status events,
    ``progress`` for progress events, ``result`` for the result event, ``error`` and
    ``error_code`` for error and cancelled events. ``data`` is the event as received.
    """

    seq: int
    type: str
    job_id: str
    ts: datetime | None
    text: str | None = None
    status: str | None = None
    progress: Progress | None = None
    result: Any = None
    error: str | None = None
    error_code: str | None = None
    attempt: int = 0
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        """Whether this is the run's last event (result, error or cancelled)."""
        return self.type in ("result", "error", "cancelled")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, event_type: str | None = None, seq: int | None = None) -> Event:
        """Build from an event's JSON (the SSE ``data`` or an item of ``/events``)."""
        etype = event_type or str(d.get("type", ""))
        prog: Progress | None = None
        if isinstance(d.get("progress"), dict):
            prog = Progress.from_dict(d["progress"])
        elif etype == "progress":
            prog = Progress.from_dict(d)
        return cls(
            seq=seq if seq is not None else _int(d.get("seq")),
            type=etype,
            job_id=str(d.get("job_id") or ""),
            ts=parse_datetime(d.get("ts")),
            text=d.get("text") if isinstance(d.get("text"), str) else None,
            status=_opt_str(d.get("status")),
            progress=prog,
            result=d.get("result"),
            error=_opt_str(d.get("error")),
            error_code=_opt_str(d.get("error_code")),
            attempt=_int(d.get("attempt")),
            data=dict(d),
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a run listing, newest first. Iterating a page yields its runs."""

    jobs: list[JobStatus]
    total: int
    page: int
    page_size: int

    def __iter__(self) -> Iterator[JobStatus]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Page:
        """Build from a ``GET /api/v1/runs`` answer."""
        jobs = [JobStatus.from_dict(j) for j in d.get("jobs") or [] if isinstance(j, dict)]
        return cls(jobs=jobs, total=_int(d.get("total")), page=_int(d.get("page"), 1),
                   page_size=_int(d.get("page_size"), len(jobs)))


@dataclass(frozen=True, slots=True)
class Stats:
    """Queue statistics: run counts by state, averages, and the limits in force."""

    queued: int
    scheduled: int
    running: int
    paused: int
    succeeded: int
    failed: int
    cancelled: int
    total: int
    avg_wait_seconds: float
    avg_duration_seconds: float
    queued_by_priority: dict[str, int]
    limits: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Stats:
        """Build from a ``GET /api/v1/stats`` answer."""
        qbp = d.get("queued_by_priority")
        limits = d.get("limits")
        return cls(
            queued=_int(d.get("queued_count")),
            scheduled=_int(d.get("scheduled_count")),
            running=_int(d.get("running_count")),
            paused=_int(d.get("paused_count")),
            succeeded=_int(d.get("succeeded_count")),
            failed=_int(d.get("failed_count")),
            cancelled=_int(d.get("cancelled_count")),
            total=_int(d.get("total_runs")),
            avg_wait_seconds=_opt_float(d.get("avg_wait_seconds")) or 0.0,
            avg_duration_seconds=_opt_float(d.get("avg_duration_seconds")) or 0.0,
            queued_by_priority={str(k): _int(v) for k, v in qbp.items()} if isinstance(qbp, dict) else {},
            limits=dict(limits) if isinstance(limits, dict) else {},
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class Recipe:
    """A recipe the server can run: its name, kind (``exec``, ``llm``, ...), defaults and
    the JSON Schema of its input (``None`` when it takes any input)."""

    name: str
    kind: str
    description: str = ""
    version: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    input_schema: Any = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recipe:
        """Build from an item of ``GET /api/v1/recipes``."""
        defaults = d.get("defaults")
        return cls(
            name=str(d.get("name") or ""),
            kind=str(d.get("kind") or ""),
            description=str(d.get("description") or ""),
            version=str(d.get("version") or ""),
            defaults=dict(defaults) if isinstance(defaults, dict) else {},
            input_schema=d.get("input_schema"),
            raw=dict(d),
        )


def format_delay(delay: str | float | timedelta) -> str:
    """Write a delay as the Go duration string the API reads (``"90s"``)."""
    if isinstance(delay, str):
        return delay
    secs = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if secs < 0:
        raise ValueError("delay must not be negative")
    return f"{int(secs)}s" if secs == int(secs) else f"{secs:.3f}s"


def format_time(t: datetime | str) -> str:
    """Write a time as RFC 3339; a naive datetime is taken as local time."""
    if isinstance(t, str):
        return t
    if t.tzinfo is None:
        t = t.astimezone()
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
