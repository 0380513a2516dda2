"""Python client for Spool, the job server and queue for long-running AI-agent work.

Submit a run of a recipe, poll it, wait for it, stream its events and cancel it, from
synchronous code (:class:`Client`, :class:`Job`) or asyncio (:class:`AsyncClient`,
:class:`AsyncJob`)::

    import spool

    with spool.Client() as client:          # SPOOL_URL / SPOOL_TOKEN, else 127.0.0.1:8005
        job = client.submit("echo", {"hello": "world"})
        print(job.status().state)           # pending, running, completed, failed, cancelled
        result = job.wait(timeout_ms=60_000)
        print(result.output)
"""

from ._async import AsyncClient, AsyncEventStream, AsyncJob
from ._errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    QueueFull,
    ServerUnavailable,
    SpoolError,
    TooLarge,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from ._models import (
    Event,
    JobAccepted,
    JobResult,
    JobStatus,
    Page,
    Progress,
    Recipe,
    RunFailed,
    Stats,
    seed_state,
)
from ._sync import Client, EventStream, Job
from ._version import __version__

# ExecuteResult is the Job SDK's name for what wait() returns.
ExecuteResult = JobResult

__all__ = [
    "AsyncClient",
    "AsyncEventStream",
    "AsyncJob",
    "Client",
    "Conflict",
    "Event",
    "EventStream",
    "ExecuteResult",
    "FieldError",
    "Forbidden",
    "Job",
    "JobAccepted",
    "JobResult",
    "JobStatus",
    "NotFound",
    "Page",
    "Progress",
    "QueueFull",
    "Recipe",
    "RunFailed",
    "ServerUnavailable",
    "SpoolError",
    "Stats",
    "TooLarge",
    "Unauthorized",
    "ValidationError",
    "WaitTimeout",
    "__version__",
    "seed_state",
]
