"""The synchronous client: Client, Job and EventStream."""

from __future__ import annotations

import builtins
import time
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Iterable, Iterator, Mapping

import httpx

from . import _core
from ._errors import Conflict, QueueFull, ServerUnavailable, SpoolError, error_from_response
from ._models import Event, JobAccepted, JobResult, JobStatus, Page, Recipe, Stats

__all__ = ["Client", "Job", "EventStream"]


class Client:
    """A client of a Spool server. It is safe to share between threads.

    ``url`` defaults to ``SPOOL_URL``, else ``http://127.0.0.1:8005``; ``token`` to
    ``SPOOL_TOKEN`` (sent as ``Authorization: Bearer``). ``timeout`` bounds each plain
    request in seconds; waits and streams have their own timing. With
    ``retry_queue_full=True`` a submit refused because the queue is full is tried again
    after the server's Retry-After, for up to ``queue_full_timeout`` seconds.
    ``transport`` replaces httpx's (for tests or proxies).

    Use it as a context manager, or call :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = _core.DEFAULT_TIMEOUT,
        retry_queue_full: bool = False,
        queue_full_timeout: float = _core.QUEUE_FULL_TIMEOUT,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _core.normalize_url(url)
        self.retry_queue_full = retry_queue_full
        self.queue_full_timeout = queue_full_timeout
        self._http = httpx.Client(
            base_url=self.url,
            headers=_core.default_headers(_core.resolve_token(token), user_agent),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # --- transport -----------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              json: Any = None, timeout: httpx.Timeout | None = None) -> httpx.Response:
        """Send one request and return its 2xx answer; raise the typed error otherwise."""
        retry = _core.QueueFullRetry(self.retry_queue_full, self.queue_full_timeout)
        while True:
            try:
                kw: dict[str, Any] = {"params": params, "json": json}
                if timeout is not None:
                    kw["timeout"] = timeout
                resp = self._http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise _core.transport_error(exc, self.url) from exc
            if resp.status_code < 300:
                return resp
            err = error_from_response(resp.status_code, resp.headers, resp.content)
            if not isinstance(err, QueueFull):
                raise err
            time.sleep(retry.pause(err))

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return _core.decode_json(self._send(method, path, **kw))

    # --- runs ----------------------------------------------------------------------------

    def submit(
        self,
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
    ) -> Job:
        """Submit a run of ``recipe`` with ``input`` (any JSON) and return its handle.

        ``priority`` is ``urgent``, ``high``, ``normal`` or ``low``; ``timeout`` bounds one
        attempt in seconds; ``run_at`` (a datetime) or ``delay`` (seconds, a timedelta or
        ``"90s"``) hold the run back. With ``idempotency_key`` a repeated submit returns the
        existing run instead of creating one (``job.accepted.existing`` tells).
        """
        body = _core.submit_body(
            recipe, input, priority=priority, agent=agent, workspace=workspace,
            session_id=session_id, timeout=timeout, max_retries=max_retries,
            idempotency_key=idempotency_key, idempotency_scope=idempotency_scope,
            webhook_url=webhook_url, webhook_events=webhook_events, metadata=metadata,
            config=config, run_at=run_at, delay=delay)
        resp = self._send("POST", f"{_core.API_PREFIX}/runs", json=body)
        data = _core.decode_json(resp)
        accepted = JobAccepted.from_dict(data, existing=resp.status_code == 200)
        return Job(self, accepted.id, accepted=accepted)

    def job(self, job_id: str) -> Job:
        """A handle on an existing run, made without asking the server."""
        return Job(self, job_id)

    def get(self, job_id: str) -> JobStatus:
        """The run's current state. An unknown id raises :class:`NotFound`."""
        return JobStatus.from_dict(self._json("GET", _core.run_path(job_id)))

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        recipe: str | None = None,
        agent: str | None = None,
        workspace: str | None = None,
        session_id: str | None = None,
        page_size: int = 50,
    ) -> Iterator[Page]:
        """Iterate over the pages of runs matching the filters, newest first.

        ``status`` takes Spool's states or the Job SDK's words (``pending``,
        ``completed``), one or several. Pages are fetched as the iteration reaches them,
        by keyset, so runs submitted meanwhile neither shift nor repeat entries.
        """
        after: str | None = None
        while True:
            q = _core.list_params(status=status, recipe=recipe, agent=agent, workspace=workspace,
                                  session_id=session_id, page_size=page_size, after=after)
            page = Page.from_dict(self._json("GET", f"{_core.API_PREFIX}/runs", params=q))
            if page.jobs or after is None:
                yield page
            if len(page.jobs) < page_size or not page.jobs:
                return
            after = page.jobs[-1].id

    def stats(self) -> Stats:
        """Queue statistics."""
        return Stats.from_dict(self._json("GET", f"{_core.API_PREFIX}/stats"))

    def recipes(self) -> builtins.list[Recipe]:
        """The recipes the server can run."""
        data = self._json("GET", f"{_core.API_PREFIX}/recipes")
        return [Recipe.from_dict(r) for r in data.get("recipes") or [] if isinstance(r, dict)]


class Job:
    """A handle on one run. ``accepted`` is the submit's answer (``None`` for a handle made
    by :meth:`Client.job`)."""

    def __init__(self, client: Client, job_id: str, *, accepted: JobAccepted | None = None) -> None:
        self._client = client
        self.id = job_id
        self.accepted = accepted

    def __repr__(self) -> str:
        return f"Job(id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other._client is self._client

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> JobStatus:
        """Poll the run's current state."""
        return self._client.get(self.id)

    def result(self) -> JobResult:
        """The run's outcome. While the run is still active this raises :class:`Conflict`;
        use :meth:`wait` to wait for it."""
        return JobResult.from_dict(self._client._json("GET", _core.run_path(self.id, "/result")))

    def wait(self, *, timeout_ms: float | None = None, poll_seconds: float = _core.WAIT_SLICE) -> JobResult:
        """Wait until the run has finished and return its outcome (check ``.ok``, or call
        ``.raise_for_status()``).

        With ``timeout_ms`` the wait raises :class:`TimeoutError` (a
        :class:`~spool.WaitTimeout`) when the time runs out; the run goes on. The wait
        long-polls the server in slices of ``poll_seconds``, so a finished run is noticed at
        once.
        """
        deadline = _core.Deadline(self.id, timeout_ms, poll_seconds)
        path = _core.run_path(self.id, "/wait")
        while True:
            window = deadline.next_slice()
            start = time.monotonic()
            try:
                data = self._client._json("GET", path, params=_core.poll_query(window),
                                          timeout=_core.poll_timeout(window))
            except ServerUnavailable:
                left = deadline.remaining()
                if left is not None and left <= 0:
                    raise deadline.timeout() from None
                raise
            status = JobStatus.from_dict(data)
            if status.result is not None:
                return status.result
            deadline.last = status
            pause = deadline.pause_after(window, time.monotonic() - start)
            if pause > 0:
                time.sleep(pause)

    def cancel(self) -> None:
        """Cancel the run. A queued, scheduled or paused run ends cancelled at once; a
        running one shortly after. Cancelling a run that has already finished has no effect
        and is not an error."""
        try:
            self._client._send("POST", _core.run_path(self.id, "/cancel"))
        except Conflict:
            pass

    def retry(self) -> Job:
        """Start a new run with the same recipe and input (the run must have finished);
        return its handle. The new run's ``retry_of`` names this one."""
        resp = self._client._send("POST", _core.run_path(self.id, "/retry"))
        accepted = JobAccepted.from_dict(_core.decode_json(resp))
        return Job(self._client, accepted.id, accepted=accepted)

    def events(self, *, after: int = 0, reconnect_timeout: float = _core.RECONNECT_TIMEOUT) -> EventStream:
        """Iterate over the run's events from the one after seq ``after``, live while the
        run goes on, ending after its terminal event. A broken connection is resumed with
        ``Last-Event-ID``, so no event is repeated or skipped."""
        return EventStream(self._client, self.id, after=after, reconnect_timeout=reconnect_timeout)


class EventStream(Iterator[Event]):
    """An iterator over a run's Server-Sent Events that resumes after a broken connection.

    ``last_seq`` is the sequence number of the last event handed out; ``reconnects`` counts
    the connections opened after the first. Close it (or use ``with``) to stop early.
    """

    def __init__(self, client: Client, job_id: str, *, after: int = 0,
                 reconnect_timeout: float = _core.RECONNECT_TIMEOUT) -> None:
        self._client = client
        self.job_id = job_id
        self.last_seq = after
        self.reconnects = 0
        # Events a resumed connection sent again and that were dropped (0 when the
        # server honours Last-Event-ID, as Spool does).
        self._skipped = 0
        self._reconnect = _core.Reconnect(reconnect_timeout)
        self._parser = _core.SSEParser()
        self._resp: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._opened = False
        self._done = False

    def __iter__(self) -> EventStream:
        return self

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream and close its connection."""
        self._done = True
        self._drop()

    def _drop(self) -> None:
        """Close the current connection; the next event is read from a new one."""
        resp, lines, self._resp, self._lines = self._resp, self._lines, None, None
        self._parser.reset()
        try:
            if lines is not None and hasattr(lines, "close"):
                lines.close()
        finally:
            if resp is not None:
                resp.close()

    def _cut(self) -> None:
        """Test hook: break the connection as a network failure would. Events already
        received but not yet handed out are read again from the new connection."""
        self._drop()

    def _open(self) -> Iterator[str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_seq > 0:
            headers["Last-Event-ID"] = str(self.last_seq)
        http = self._client._http
        req = http.build_request("GET", _core.run_path(self.job_id, "/stream"), headers=headers,
                                 timeout=httpx.Timeout(_core.STREAM_READ_TIMEOUT, connect=10.0))
        if self._opened:
            self.reconnects += 1
        self._opened = True
        resp = http.send(req, stream=True)
        if resp.status_code >= 300:
            try:
                body = resp.read()
            finally:
                resp.close()
            raise error_from_response(resp.status_code, resp.headers, body)
        self._resp = resp
        self._lines = resp.iter_lines()
        return self._lines

    def __next__(self) -> Event:
        while not self._done:
            try:
                lines = self._lines if self._lines is not None else self._open()
                for line in lines:
                    msg = self._parser.feed(line)
                    if msg is None:
                        continue
                    ev = _core.event_from_message(msg)
                    if ev is None:
                        continue
                    if ev.seq <= self.last_seq:
                        self._skipped += 1
                        continue
                    self.last_seq = ev.seq
                    self._reconnect.progressed()
                    if ev.terminal:
                        self.close()
                    return ev
                cause: BaseException | None = None  # the server ended the stream early
            except (httpx.TransportError, ServerUnavailable) as exc:
                cause = exc
            except BaseException:
                self.close()
                raise
            self._drop()
            try:
                pause = self._reconnect.pause(cause)
            except SpoolError:
                self.close()
                raise
            if pause > 0:
                time.sleep(pause)
        raise StopIteration
