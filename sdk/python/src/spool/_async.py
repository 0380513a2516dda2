"""The asynchronous client: AsyncClient, AsyncJob and AsyncEventStream."""

from __future__ import annotations

import asyncio
import builtins
import time
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, AsyncIterator, Iterable, Mapping

import httpx

from . import _core
from ._errors import Conflict, QueueFull, ServerUnavailable, SpoolError, error_from_response
from ._models import Event, JobAccepted, JobResult, JobStatus, Page, Recipe, Stats

__all__ = ["AsyncClient", "AsyncJob", "AsyncEventStream"]


class AsyncClient:
    """The asyncio face of :class:`~spool.Client`: the same methods, as coroutines. One
    client is safe to use from many tasks at once; create it inside the event loop that
    uses it, and close it with ``await client.aclose()`` or ``async with``.
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
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self.url = _core.normalize_url(url)
        self.retry_queue_full = retry_queue_full
        self.queue_full_timeout = queue_full_timeout
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_core.default_headers(_core.resolve_token(token), user_agent),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(url={self.url!r})"

    # --- transport -----------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    json: Any = None, timeout: httpx.Timeout | None = None) -> httpx.Response:
        """Send one request and return its 2xx answer; raise the typed error otherwise."""
        retry = _core.QueueFullRetry(self.retry_queue_full, self.queue_full_timeout)
        while True:
            try:
                kw: dict[str, Any] = {"params": params, "json": json}
                if timeout is not None:
                    kw["timeout"] = timeout
                resp = await self._http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise _core.transport_error(exc, self.url) from exc
            if resp.status_code < 300:
                return resp
            err = error_from_response(resp.status_code, resp.headers, resp.content)
            if not isinstance(err, QueueFull):
                raise err
            await asyncio.sleep(retry.pause(err))

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        return _core.decode_json(await self._send(method, path, **kw))

    # --- runs ----------------------------------------------------------------------------

    async def submit(
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
    ) -> AsyncJob:
        """Submit a run; see :meth:`spool.Client.submit`."""
        body = _core.submit_body(
            recipe, input, priority=priority, agent=agent, workspace=workspace,
            session_id=session_id, timeout=timeout, max_retries=max_retries,
            idempotency_key=idempotency_key, idempotency_scope=idempotency_scope,
            webhook_url=webhook_url, webhook_events=webhook_events, metadata=metadata,
            config=config, run_at=run_at, delay=delay)
        resp = await self._send("POST", f"{_core.API_PREFIX}/runs", json=body)
        accepted = JobAccepted.from_dict(_core.decode_json(resp), existing=resp.status_code == 200)
        return AsyncJob(self, accepted.id, accepted=accepted)

    def job(self, job_id: str) -> AsyncJob:
        """A handle on an existing run, made without asking the server."""
        return AsyncJob(self, job_id)

    async def get(self, job_id: str) -> JobStatus:
        """The run's current state. An unknown id raises :class:`NotFound`."""
        return JobStatus.from_dict(await self._json("GET", _core.run_path(job_id)))

    async def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        recipe: str | None = None,
        agent: str | None = None,
        workspace: str | None = None,
        session_id: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Page]:
        """Iterate (``async for``) over the pages of matching runs; see :meth:`spool.Client.list`."""
        after: str | None = None
        while True:
            q = _core.list_params(status=status, recipe=recipe, agent=agent, workspace=workspace,
                                  session_id=session_id, page_size=page_size, after=after)
            page = Page.from_dict(await self._json("GET", f"{_core.API_PREFIX}/runs", params=q))
            if page.jobs or after is None:
                yield page
            if len(page.jobs) < page_size or not page.jobs:
                return
            after = page.jobs[-1].id

    async def stats(self) -> Stats:
        """Queue statistics."""
        return Stats.from_dict(await self._json("GET", f"{_core.API_PREFIX}/stats"))

    async def recipes(self) -> builtins.list[Recipe]:
        """The recipes the server can run."""
        data = await self._json("GET", f"{_core.API_PREFIX}/recipes")
        return [Recipe.from_dict(r) for r in data.get("recipes") or [] if isinstance(r, dict)]


class AsyncJob:
    """The asyncio face of :class:`~spool.Job`: every method is a coroutine, and
    :meth:`events` is iterated with ``async for``."""

    def __init__(self, client: AsyncClient, job_id: str, *, accepted: JobAccepted | None = None) -> None:
        self._client = client
        self.id = job_id
        self.accepted = accepted

    def __repr__(self) -> str:
        return f"AsyncJob(id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncJob) and other.id == self.id and other._client is self._client

    def __hash__(self) -> int:
        return hash(self.id)

    async def status(self) -> JobStatus:
        """Poll the run's current state."""
        return await self._client.get(self.id)

    async def result(self) -> JobResult:
        """The run's outcome; :class:`Conflict` while the run is still active."""
        return JobResult.from_dict(await self._client._json("GET", _core.run_path(self.id, "/result")))

    async def wait(self, *, timeout_ms: float | None = None, poll_seconds: float = _core.WAIT_SLICE) -> JobResult:
        """Wait until the run has finished and return its outcome; raise
        :class:`TimeoutError` when ``timeout_ms`` runs out first (the run goes on)."""
        deadline = _core.Deadline(self.id, timeout_ms, poll_seconds)
        path = _core.run_path(self.id, "/wait")
        while True:
            window = deadline.next_slice()
            start = time.monotonic()
            try:
                data = await self._client._json("GET", path, params=_core.poll_query(window),
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
                await asyncio.sleep(pause)

    async def cancel(self) -> None:
        """Cancel the run; no effect, and no error, when it has already finished."""
        try:
            await self._client._send("POST", _core.run_path(self.id, "/cancel"))
        except Conflict:
            pass

    async def retry(self) -> AsyncJob:
        """Start a new run repeating this finished one; return its handle."""
        resp = await self._client._send("POST", _core.run_path(self.id, "/retry"))
        accepted = JobAccepted.from_dict(_core.decode_json(resp))
        return AsyncJob(self._client, accepted.id, accepted=accepted)

    def events(self, *, after: int = 0, reconnect_timeout: float = _core.RECONNECT_TIMEOUT) -> AsyncEventStream:
        """Iterate (``async for``) over the run's events; see :meth:`spool.Job.events`."""
        return AsyncEventStream(self._client, self.id, after=after, reconnect_timeout=reconnect_timeout)


class AsyncEventStream(AsyncIterator[Event]):
    """An async iterator over a run's Server-Sent Events that resumes after a broken
    connection; see :class:`~spool.EventStream`. Close it with ``await stream.aclose()`` (or
    ``async with``) to stop early."""

    def __init__(self, client: AsyncClient, job_id: str, *, after: int = 0,
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
        self._lines: AsyncIterator[str] | None = None
        self._opened = False
        self._done = False

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream and close its connection."""
        self._done = True
        await self._drop()

    async def _drop(self) -> None:
        resp, lines, self._resp, self._lines = self._resp, self._lines, None, None
        self._parser.reset()
        try:
            if lines is not None and hasattr(lines, "aclose"):
                await lines.aclose()
        finally:
            if resp is not None:
                await resp.aclose()

    async def _cut(self) -> None:
        """Test hook: break the connection as a network failure would."""
        await self._drop()

    async def _open(self) -> AsyncIterator[str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_seq > 0:
            headers["Last-Event-ID"] = str(self.last_seq)
        http = self._client._http
        req = http.build_request("GET", _core.run_path(self.job_id, "/stream"), headers=headers,
                                 timeout=httpx.Timeout(_core.STREAM_READ_TIMEOUT, connect=10.0))
        if self._opened:
            self.reconnects += 1
        self._opened = True
        resp = await http.send(req, stream=True)
        if resp.status_code >= 300:
            try:
                body = await resp.aread()
            finally:
                await resp.aclose()
            raise error_from_response(resp.status_code, resp.headers, body)
        self._resp = resp
        self._lines = resp.aiter_lines()
        return self._lines

    async def __anext__(self) -> Event:
        while not self._done:
            try:
                lines = self._lines if self._lines is not None else await self._open()
                async for line in lines:
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
                        await self.aclose()
                    return ev
                cause: BaseException | None = None
            except (httpx.TransportError, ServerUnavailable) as exc:
                cause = exc
            except BaseException:
                await self.aclose()
                raise
            await self._drop()
            try:
                pause = self._reconnect.pause(cause)
            except SpoolError:
                await self.aclose()
                raise
            if pause > 0:
                await asyncio.sleep(pause)
        raise StopAsyncIteration
