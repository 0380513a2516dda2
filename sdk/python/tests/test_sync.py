"""The synchronous client against a real spool server."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

import spool
from conftest import ADMIN_TOKEN, Server, collect_events
from cutproxy import CuttingProxy


def uid() -> str:
    return uuid.uuid4().hex[:12]


def stored_events(server: Server, job_id: str, count: int) -> list[dict[str, Any]]:
    """The run's events as the server stored them, once at least count are stored (the
    store writes events in batches)."""
    deadline = time.monotonic() + 10
    while True:
        resp = httpx.get(f"{server.url}/api/v1/runs/{job_id}/events",
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        resp.raise_for_status()
        events: list[dict[str, Any]] = resp.json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def wait_for_state(job: spool.Job, status: str, timeout: float = 15) -> spool.JobStatus:
    """Poll until the run is in status (Spool's word), or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        st = job.status()
        if st.status == status:
            return st
        assert not st.done, f"run ended {st.status} while waiting for {status}"
        assert time.monotonic() < deadline, f"run still {st.status} after {timeout}s"
        time.sleep(0.05)


def test_submit_status_wait(client: spool.Client) -> None:
    job = client.submit("echo", {"hello": "world"}, metadata={"from": "python"}, priority="high")
    assert job.id.startswith("run_")
    assert job.accepted is not None and job.accepted.state == "pending" and not job.accepted.existing
    assert job.accepted.poll_url == f"/api/v1/runs/{job.id}"
    first = job.status()
    assert first.id == job.id and first.state in ("pending", "running", "completed")
    assert first.recipe == "echo" and first.priority == "high" and first.metadata.get("from") == "python"
    assert isinstance(first.created_at, datetime) and first.created_at.tzinfo is not None

    result = job.wait(timeout_ms=30_000)
    assert result.ok and result.state == "completed" and result.output == {"hello": "world"}
    assert result.id == job.id and result.attempt == 1

    final = job.status()
    assert final.state == "completed" and final.status == "succeeded" and final.done
    assert final.result is not None and final.result.output == {"hello": "world"}
    assert final.error is None and final.progress.percentage == 100
    assert final.started_at is not None and final.completed_at is not None
    assert final.created_at is not None and final.created_at <= final.started_at <= final.completed_at
    assert job.result().value == {"hello": "world"}


def test_wait_timeout_raises_in_time_and_the_run_goes_on(client: spool.Client) -> None:
    job = client.submit("sleep", {"seconds": 30})
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            job.wait(timeout_ms=600)
        elapsed = time.monotonic() - start
        assert 0.55 <= elapsed < 3, f"wait(timeout_ms=600) raised after {elapsed:.2f}s"
        assert isinstance(info.value, spool.WaitTimeout) and info.value.job_id == job.id
        # The run was not touched by the timeout: it gets to run.
        st = wait_for_state(job, "running")
        assert st.state == "running" and st.cancel_requested_at is None
    finally:
        job.cancel()
    assert job.wait(timeout_ms=20_000).state == "cancelled"


def test_cancel_running_run(client: spool.Client) -> None:
    job = client.submit("sleep", {"seconds": 30})
    wait_for_state(job, "running")
    job.cancel()
    result = job.wait(timeout_ms=20_000)
    assert result.state == "cancelled" and result.status == "cancelled" and not result.ok
    with pytest.raises(spool.RunFailed):
        result.raise_for_status()
    assert job.status().state == "cancelled"


def test_cancel_finished_run_is_no_op(server: Server, client: spool.Client) -> None:
    job = client.submit("echo", "done")
    assert job.wait(timeout_ms=30_000).ok
    # The server refuses the cancel of a finished run with 409 ...
    raw = httpx.post(f"{server.url}/api/v1/runs/{job.id}/cancel",
                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert raw.status_code == 409 and raw.json()["run_status"] == "succeeded"
    # ... which the SDK treats as "no effect".
    job.cancel()
    st = job.status()
    assert st.state == "completed" and st.cancel_requested_at is None


def test_delayed_run_is_pending_and_cancels_at_once(client: spool.Client) -> None:
    job = client.submit("echo", {"x": 1}, delay=timedelta(hours=1))
    st = job.status()
    assert st.state == "pending" and st.status == "scheduled" and st.run_at is not None
    assert st.run_at > datetime.now(timezone.utc) + timedelta(minutes=50)
    job.cancel()
    assert job.status().state == "cancelled"
    at = datetime.now(timezone.utc) + timedelta(hours=2)
    later = client.submit("echo", run_at=at)
    st2 = later.status()
    assert st2.status == "scheduled" and st2.run_at is not None and abs((st2.run_at - at).total_seconds()) < 1
    later.cancel()


def test_retry_creates_a_linked_run(client: spool.Client) -> None:
    job = client.submit("echo", {"n": 1})
    job.wait(timeout_ms=30_000)
    again = job.retry()
    assert again.id != job.id and again.accepted is not None and again.accepted.state == "pending"
    assert again.status().retry_of == job.id
    assert again.wait(timeout_ms=30_000).output == {"n": 1}


def test_result_conflicts_while_active(client: spool.Client) -> None:
    job = client.submit("sleep", {"seconds": 30})
    try:
        with pytest.raises(spool.Conflict) as info:
            job.result()
        assert info.value.status == 409 and info.value.run_status in ("queued", "running")
        with pytest.raises(spool.Conflict):
            job.retry()
    finally:
        job.cancel()


def test_idempotency_key_returns_the_same_run(client: spool.Client) -> None:
    key = "sync-" + uid()
    a = client.submit("echo", {"k": 1}, idempotency_key=key)
    b = client.submit("echo", {"k": 1}, idempotency_key=key)
    assert a.id == b.id
    assert a.accepted is not None and not a.accepted.existing
    assert b.accepted is not None and b.accepted.existing
    c = client.submit("echo", {"k": 1}, idempotency_key=key, idempotency_scope="none")
    assert c.id != a.id


def test_events_stream_every_event_once(server: Server, client: spool.Client) -> None:
    job = client.submit("countdown", {"n": 5, "delay": 0.05})
    with job.events() as stream:
        events = collect_events(stream)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)) and len(events) >= 7
    assert events[-1].type == "result" and events[-1].result == {"counted": 5}
    assert all(e.job_id == job.id for e in events) and stream.reconnects == 0
    text = "".join(e.text or "" for e in events if e.type == "output")
    assert text.split() == ["5", "4", "3", "2", "1", "liftoff"]
    assert any(e.type == "progress" and e.progress is not None for e in events)
    statuses = [e.status for e in events if e.type == "status"]
    assert "running" in statuses and statuses[-1] == "succeeded"
    assert all(e.ts is not None and e.ts.tzinfo is not None for e in events)
    stored = stored_events(server, job.id, len(events))
    assert [(e["seq"], e["type"]) for e in stored] == [(e.seq, e.type) for e in events]
    # Starting after a given event.
    tail = collect_events(job.events(after=3))
    assert [e.seq for e in tail] == seqs[3:]


def test_events_resume_after_the_connection_is_cut(client: spool.Client) -> None:
    job = client.submit("countdown", {"n": 10, "delay": 0.05})
    stream = job.events()

    def on_event(got: list[spool.Event]) -> None:
        if len(got) == 4:
            stream._cut()  # the test hook: drop the connection like a network failure
        if len(got) == 5:
            # The reconnect continued exactly after the last event handed out.
            assert got[-1].seq == 5 and stream.reconnects == 1

    got = collect_events(stream, on_event=on_event)
    assert stream.reconnects == 1 and stream._skipped == 0  # resumed by Last-Event-ID, nothing resent
    assert [e.seq for e in got] == list(range(1, len(got) + 1))
    assert got[-1].type == "result" and got[-1].result == {"counted": 10}


def test_events_resume_through_a_real_network_failure(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, cut_after=700)
    try:
        with server.client() as direct, spool.Client(proxy.url, token=ADMIN_TOKEN) as via_proxy:
            job_id = direct.submit("countdown", {"n": 12, "delay": 0.05}).id
            stream = via_proxy.job(job_id).events()
            events = collect_events(stream)
        assert proxy.cuts == 1 and proxy.connections >= 2 and stream.reconnects >= 1
        assert stream._skipped == 0
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert events[-1].type == "result" and events[-1].result == {"counted": 12}
        stored = stored_events(server, job_id, len(events))
        assert [e["seq"] for e in stored] == seqs
    finally:
        proxy.close()


def test_list_pages(client: spool.Client) -> None:
    session = "list-" + uid()
    ids = [client.submit("echo", {"i": i}, session_id=session).id for i in range(5)]
    pages = list(client.list(session_id=session, page_size=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [j.id for p in pages for j in p]
    assert listed == list(reversed(ids))  # newest first, none repeated
    assert pages[0].total == 5 and all(j.session_id == session for p in pages for j in p)
    for i in ids:
        client.job(i).wait(timeout_ms=30_000)
    done = [j for p in client.list(session_id=session, status="completed") for j in p]
    assert len(done) == 5 and all(j.state == "completed" for j in done)
    assert [j for p in client.list(session_id=session, status=["pending", "running"]) for j in p] == []


def test_stats_and_recipes(client: spool.Client) -> None:
    client.submit("echo", 1).wait(timeout_ms=30_000)
    stats = client.stats()
    assert stats.total >= 1 and stats.succeeded >= 1 and isinstance(stats.limits, dict)
    recipes = {r.name: r for r in client.recipes()}
    assert {"echo", "countdown", "sleep", "flaky"} <= set(recipes)
    assert recipes["countdown"].kind == "exec" and isinstance(recipes["countdown"].input_schema, dict)


def test_client_reads_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_URL", server.url)
    monkeypatch.setenv("SPOOL_TOKEN", ADMIN_TOKEN)
    with spool.Client() as c:
        assert c.url == server.url
        assert c.submit("echo", "env").wait(timeout_ms=30_000).output == "env"


def test_failed_run_reports_its_error(client: spool.Client) -> None:
    job = client.submit("flaky", {"fail_percent": 100}, max_retries=0)
    result = job.wait(timeout_ms=30_000)
    assert result.state == "failed" and not result.ok and result.error and result.error_code
    st = job.status()
    assert st.state == "failed" and st.error == result.error and st.error_code == result.error_code
