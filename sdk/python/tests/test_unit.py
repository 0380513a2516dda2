"""Unit tests of parsing and request building, with httpx.MockTransport standing in for the
server. Behaviour against a real server is in the other test files."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
import pytest

import spool
from spool import _core
from spool._errors import error_from_response
from spool._models import parse_datetime

RUN: dict[str, Any] = {
    "job_id": "run_01JTEST", "run_id": "run_01JTEST", "recipe_name": "echo", "agent": "echo",
    "workspace": "default", "session_id": "s1", "status": "succeeded", "priority": "high",
    "input": {"a": 1}, "result": {"output": "hi", "usage": {"tokens": 3}}, "error": None,
    "error_code": None, "progress": {"percentage": 100, "current_step": "done",
                                     "steps_completed": 2, "steps_total": 2},
    "attempt": 1, "max_retries": 2, "timeout_sec": 30, "created_at": "2026-01-02T03:04:05.123456789Z",
    "started_at": "2026-01-02T03:04:06Z", "completed_at": "2026-01-02T05:04:07.5+02:00",
    "duration_seconds": 1.5, "wait_seconds": 0.877, "retry_after": None,
    "poll_url": "/api/v1/runs/run_01JTEST", "stream_url": "/api/v1/runs/run_01JTEST/stream",
}

Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(handler: Handler, **kw: Any) -> spool.Client:
    return spool.Client("http://spool.test", token="tok", transport=httpx.MockTransport(handler), **kw)


def problem(status: int, code: str, **extra: Any) -> httpx.Response:
    body = {"type": f"https://spool.run/problems/{code}", "title": code, "status": status,
            "detail": f"{code} happened", "code": code, **extra}
    headers = {"Content-Type": "application/problem+json"}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return httpx.Response(status, json=body, headers=headers)


def test_parse_datetime_handles_nanoseconds_zones_and_none() -> None:
    t = parse_datetime("2026-01-02T03:04:05.123456789Z")
    assert t == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    t2 = parse_datetime("2026-01-02T05:04:07.5+02:00")
    assert t2 is not None and t2.utcoffset() == timedelta(hours=2)
    assert t2 == datetime(2026, 1, 2, 3, 4, 7, 500000, tzinfo=timezone.utc)
    assert parse_datetime("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert parse_datetime(None) is None and parse_datetime("") is None
    with pytest.raises(ValueError):
        parse_datetime("yesterday")


@pytest.mark.parametrize("status,state", [
    ("queued", "pending"), ("scheduled", "pending"), ("paused", "pending"), ("running", "running"),
    ("succeeded", "completed"), ("failed", "failed"), ("cancelled", "cancelled"),
])
def test_seed_state(status: str, state: str) -> None:
    assert spool.seed_state(status) == state


def test_job_status_from_run_object() -> None:
    st = spool.JobStatus.from_dict(RUN)
    assert (st.id, st.state, st.status, st.priority, st.attempt) == ("run_01JTEST", "completed", "succeeded", "high", 1)
    assert st.done and st.result is not None and st.result.ok
    assert st.result.output == "hi" and st.result.value == RUN["result"] and st.value == RUN["result"]
    assert st.progress == spool.Progress(100.0, "done", 2, 2)
    assert st.created_at is not None and st.created_at.microsecond == 123456
    assert st.completed_at is not None and st.started_at is not None and st.completed_at > st.started_at
    assert st.error is None and st.error_code is None and st.input == {"a": 1}

    running = spool.JobStatus.from_dict({**RUN, "status": "running", "result": None, "completed_at": None})
    assert running.state == "running" and running.result is None and not running.done


def test_job_result_output_and_raise_for_status() -> None:
    r = spool.JobResult.from_dict({**RUN, "result": {"hello": "world"}})
    assert r.output == {"hello": "world"}
    assert r.raise_for_status() is r
    failed = spool.JobResult.from_dict({**RUN, "status": "failed", "result": None,
                                        "error": "exit status 3", "error_code": "exit_status"})
    assert failed.state == "failed" and not failed.ok
    with pytest.raises(spool.RunFailed) as info:
        failed.raise_for_status()
    assert info.value.error_code == "exit_status" and "exit status 3" in str(info.value)
    # The /result answer carries attempt and wait under metrics.
    rv = spool.JobResult.from_dict({"job_id": "run_x", "status": "succeeded", "result": 5,
                                    "metrics": {"attempt": 2, "wait_seconds": 1.25}})
    assert (rv.attempt, rv.wait_seconds, rv.output) == (2, 1.25, 5)


@pytest.mark.parametrize("status,code,cls", [
    (404, "not_found", spool.NotFound),
    (409, "conflict", spool.Conflict),
    (503, "queue_full", spool.QueueFull),
    (400, "invalid", spool.ValidationError),
    (422, "unprocessable", spool.ValidationError),
    (422, "unknown_recipe", spool.ValidationError),
    (401, "unauthorized", spool.Unauthorized),
    (403, "forbidden", spool.Forbidden),
    (413, "too_large", spool.TooLarge),
    (503, "unavailable", spool.ServerUnavailable),
    (500, "internal", spool.SpoolError),
])
def test_error_classes_by_code(status: int, code: str, cls: type[spool.SpoolError]) -> None:
    resp = problem(status, code)
    err = error_from_response(status, resp.headers, resp.content)
    assert type(err) is cls and err.code == code and err.status == status
    assert err.detail == f"{code} happened" and err.problem["code"] == code


def test_error_details() -> None:
    r = problem(503, "queue_full", retry_after=7)
    qf = error_from_response(503, r.headers, r.content)
    assert isinstance(qf, spool.QueueFull) and qf.retry_after == 7.0
    r = httpx.Response(503, json={"code": "queue_full", "detail": "full"}, headers={"Retry-After": "3"})
    qf = error_from_response(503, r.headers, r.content)
    assert isinstance(qf, spool.QueueFull) and qf.retry_after == 3.0
    r = problem(400, "invalid", errors=[{"field": "priority", "reason": "unknown priority"},
                                        {"field": "timeout", "reason": "must be a whole number"}])
    ve = error_from_response(400, r.headers, r.content)
    assert isinstance(ve, spool.ValidationError) and isinstance(ve, ValueError)
    assert [f.field for f in ve.fields] == ["priority", "timeout"]
    r = problem(409, "conflict", run_status="succeeded")
    ce = error_from_response(409, r.headers, r.content)
    assert isinstance(ce, spool.Conflict) and ce.run_status == "succeeded"
    # A proxy's HTML error page still gets a code from its status.
    pe = error_from_response(502, httpx.Headers(), b"<html>Bad Gateway</html>")
    assert isinstance(pe, spool.ServerUnavailable) and "Bad Gateway" in pe.detail
    assert isinstance(error_from_response(404, httpx.Headers(), b""), spool.NotFound)


def test_sse_parser() -> None:
    p = _core.SSEParser()
    lines = ["retry: 2000", "", ": a comment", "id: 7", "event: output",
             'data: {"job_id":"r","seq":7,"type":"output",', 'data: "text":"a\\n"}', "",
             "event: heartbeat", 'data: {"job_id":"r","seq":7,"type":"heartbeat"}', "",
             "id: 8\r", "event: result", 'data: {"job_id":"r","seq":8,"type":"result","result":{"x":1}}', ""]
    msgs = [m for m in (p.feed(line) for line in lines) if m is not None]
    assert p.retry_ms == 2000 and len(msgs) == 3
    events = [_core.event_from_message(m) for m in msgs]
    assert events[1] is None  # the heartbeat
    first, last = events[0], events[2]
    assert first is not None and (first.seq, first.type, first.text) == (7, "output", "a\n")
    assert last is not None and last.terminal and last.result == {"x": 1} and last.seq == 8


def test_progress_event_reads_top_level_fields() -> None:
    ev = spool.Event.from_dict({"job_id": "r", "seq": 3, "type": "progress", "percentage": 40,
                                "current_step": "2 to go", "steps_completed": 2, "steps_total": 5})
    assert ev.progress == spool.Progress(40.0, "2 to go", 2, 5) and not ev.terminal


def test_submit_body_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(202, json={**RUN, "status": "queued", "result": None})

    run_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    with mock_client(handler) as c:
        job = c.submit("echo", {"q": 1}, priority="urgent", agent="a", workspace="w", session_id="s",
                       timeout=1.5, max_retries=2, idempotency_key="k", idempotency_scope="session",
                       webhook_url="https://example.test/hook", metadata={"m": 1}, run_at=run_at,
                       delay=timedelta(minutes=2))
    assert job.id == "run_01JTEST" and job.accepted is not None
    assert job.accepted.state == "pending" and not job.accepted.existing
    req = seen[0]
    assert req.method == "POST" and req.url.path == "/api/v1/runs"
    assert req.headers["authorization"] == "Bearer tok"
    body = json.loads(req.content)
    assert body == {"recipe_name": "echo", "input": {"q": 1}, "priority": "urgent", "agent": "a",
                    "workspace": "w", "session_id": "s", "timeout": 2, "max_retries": 2,
                    "idempotency_key": "k", "idempotency_scope": "session",
                    "webhook_url": "https://example.test/hook", "metadata": {"m": 1},
                    "run_at": "2030-01-02T02:04:05Z", "delay": "120s"}
    assert _core.submit_body("echo") == {"recipe_name": "echo"}
    assert _core.submit_body("echo", delay=1.5)["delay"] == "1.500s"


def test_existing_run_on_200(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_client(lambda req: httpx.Response(200, json=RUN)) as c:
        job = c.submit("echo", idempotency_key="k")
    assert job.accepted is not None and job.accepted.existing and job.accepted.state == "completed"


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_URL", "spool.test:9000/api/v1/")
    monkeypatch.setenv("SPOOL_TOKEN", "from-env")
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=RUN)

    c = spool.Client(transport=httpx.MockTransport(handler))
    assert c.url == "http://spool.test:9000"
    c.get("run_01JTEST")
    assert str(seen[0].url) == "http://spool.test:9000/api/v1/runs/run_01JTEST"
    assert seen[0].headers["authorization"] == "Bearer from-env"
    monkeypatch.delenv("SPOOL_URL")
    monkeypatch.delenv("SPOOL_TOKEN")
    c2 = spool.Client(transport=httpx.MockTransport(handler))
    assert c2.url == _core.DEFAULT_URL and "authorization" not in c2._http.headers
    with pytest.raises(ValueError):
        spool.Client("ftp://x")


def test_cancel_conflict_is_no_effect() -> None:
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        return problem(409, "conflict", run_status="succeeded")

    with mock_client(handler) as c:
        c.job("run_01JTEST").cancel()
        with pytest.raises(spool.Conflict):
            c.job("run_01JTEST").retry()
    assert calls == ["/api/v1/runs/run_01JTEST/cancel", "/api/v1/runs/run_01JTEST/retry"]


def test_queue_full_retry_honours_retry_after() -> None:
    attempts: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        attempts.append(0)
        if len(attempts) < 3:
            return problem(503, "queue_full", retry_after=0.05)
        return httpx.Response(202, json={**RUN, "status": "queued"})

    with mock_client(handler, retry_queue_full=True) as c:
        assert c.submit("echo").id == "run_01JTEST"
    assert len(attempts) == 3
    attempts.clear()
    with mock_client(handler) as c, pytest.raises(spool.QueueFull) as info:
        c.submit("echo")
    assert info.value.retry_after == 0.05 and len(attempts) == 1
    # A budget shorter than the Retry-After gives up at once.
    attempts.clear()
    with mock_client(lambda r: problem(503, "queue_full", retry_after=30), retry_queue_full=True,
                     queue_full_timeout=1) as c, pytest.raises(spool.QueueFull):
        c.submit("echo")


def test_transport_errors_are_server_unavailable() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    with mock_client(handler) as c, pytest.raises(spool.ServerUnavailable) as info:
        c.stats()
    assert info.value.code == "unavailable" and "could not be reached" in str(info.value)


def test_list_pages_by_keyset() -> None:
    runs = [{**RUN, "job_id": f"run_{i:02d}"} for i in range(5, 0, -1)]
    queries: list[dict[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        q = dict(req.url.params)
        queries.append(q)
        start = 0 if "after" not in q else [r["job_id"] for r in runs].index(q["after"]) + 1
        page = runs[start:start + int(q["page_size"])]
        return httpx.Response(200, json={"jobs": page, "total": 5, "page": 1, "page_size": int(q["page_size"])})

    with mock_client(handler) as c:
        pages = list(c.list(status=["pending", "running"], recipe="echo", page_size=2))
    assert [[j.id for j in p] for p in pages] == [["run_05", "run_04"], ["run_03", "run_02"], ["run_01"]]
    assert queries[0] == {"page_size": "2", "status": "pending,running", "recipe_name": "echo"}
    assert queries[1]["after"] == "run_04" and queries[2]["after"] == "run_02"


def test_wait_long_polls_in_slices() -> None:
    polls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        polls.append(req.url.params["timeout"])
        st = "running" if len(polls) < 3 else "succeeded"
        return httpx.Response(200, json={**RUN, "status": st})

    with mock_client(handler) as c:
        # The mock answers at once, so the loop pauses between polls rather than spinning.
        res = c.job("run_01JTEST").wait(poll_seconds=2)
    assert res.ok and res.output == "hi" and polls == ["2.000", "2.000", "2.000"]


def test_wait_timeout_is_builtin_timeout_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**RUN, "status": "running", "result": None})

    with mock_client(handler) as c, pytest.raises(TimeoutError) as info:
        c.job("run_01JTEST").wait(timeout_ms=150)
    assert isinstance(info.value, spool.WaitTimeout) and info.value.job_id == "run_01JTEST"
    assert isinstance(info.value.last_status, spool.JobStatus) and info.value.last_status.state == "running"


def test_wait_with_no_time_still_looks_once() -> None:
    polls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        polls.append(req.url.params["timeout"])
        return httpx.Response(200, json=RUN)

    with mock_client(handler) as c:
        assert c.job("run_01JTEST").wait(timeout_ms=0).ok
    assert polls == ["0.001"]


def sse(*events: tuple[int, str, dict[str, Any]]) -> bytes:
    out = b"retry: 2000\n\n"
    for seq, etype, data in events:
        out += f"id: {seq}\nevent: {etype}\ndata: {json.dumps({'seq': seq, 'type': etype, **data})}\n\n".encode()
    return out


def test_event_stream_resumes_with_last_event_id() -> None:
    """A stream cut mid-event resumes from the last complete event, and an event the
    server sends again is not repeated."""
    sent: list[str | None] = []
    full = sse((1, "status", {"status": "running"}), (2, "output", {"text": "a"}),
               (3, "output", {"text": "b"}))
    rest = sse((3, "output", {"text": "b"}), (4, "result", {"result": 1}))

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req.headers.get("last-event-id"))
        if len(sent) == 1:
            return httpx.Response(200, content=full + b"id: 4\nevent: res", headers={"Content-Type": "text/event-stream"})
        if len(sent) == 2:
            raise httpx.ReadError("connection reset", request=req)
        return httpx.Response(200, content=rest, headers={"Content-Type": "text/event-stream"})

    with mock_client(handler) as c:
        stream = c.job("run_01JTEST").events()
        events = list(stream)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.text for e in events[1:3]] == ["a", "b"] and events[-1].result == 1
    assert sent == [None, "3", "3"] and stream.reconnects == 2 and stream._skipped == 1


def test_event_stream_unknown_run_raises_not_found() -> None:
    with mock_client(lambda r: problem(404, "not_found")) as c, pytest.raises(spool.NotFound):
        next(c.job("run_nope").events())


def test_async_client_parsing() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.path)
        if req.url.path.endswith("/stream"):
            return httpx.Response(200, content=sse((1, "status", {}), (2, "cancelled", {"error": "cancelled"})))
        if req.url.path.endswith("/cancel"):
            return problem(409, "conflict", run_status="cancelled")
        return httpx.Response(202 if req.method == "POST" else 200, json=RUN)

    async def main() -> None:
        async with spool.AsyncClient("http://spool.test", transport=httpx.MockTransport(handler)) as c:
            job = await c.submit("echo", "hi")
            assert job.accepted is not None and not job.accepted.existing
            assert (await job.status()).state == "completed"
            assert (await job.wait()).output == "hi"
            await job.cancel()
            seqs = [ev.seq async for ev in job.events()]
            assert seqs == [1, 2]

    asyncio.run(main())
    assert seen[-1] == "/api/v1/runs/run_01JTEST/stream"
