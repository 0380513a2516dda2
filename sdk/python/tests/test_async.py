"""The asyncio client against a real spool server. Each test runs its own event loop with
asyncio.run, so no pytest plugin is needed."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Awaitable, Callable

import pytest

import spool
from conftest import Server


def run(server: Server, body: Callable[[spool.AsyncClient], Awaitable[None]], timeout: float = 90) -> None:
    """Run body with a fresh client in a fresh event loop; fail if it takes over timeout s."""
    async def main() -> None:
        async with server.async_client() as client:
            await asyncio.wait_for(body(client), timeout)

    asyncio.run(main())


async def wait_for_state(job: spool.AsyncJob, status: str, timeout: float = 15) -> spool.JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = await job.status()
        if st.status == status:
            return st
        assert not st.done, f"run ended {st.status} while waiting for {status}"
        assert time.monotonic() < deadline, f"run still {st.status} after {timeout}s"
        await asyncio.sleep(0.05)


def test_submit_status_wait(server: Server) -> None:
    async def body(client: spool.AsyncClient) -> None:
        job = await client.submit("echo", {"hello": "async"})
        assert job.accepted is not None and job.accepted.state == "pending"
        st = await job.status()
        assert st.id == job.id and st.state in ("pending", "running", "completed")
        result = await job.wait(timeout_ms=30_000)
        assert result.ok and result.output == {"hello": "async"}
        assert (await job.status()).state == "completed"
        assert (await job.result()).value == {"hello": "async"}
        assert (await client.get(job.id)).status == "succeeded"

    run(server, body)


def test_wait_timeout_and_cancel(server: Server) -> None:
    async def body(client: spool.AsyncClient) -> None:
        job = await client.submit("sleep", {"seconds": 30})
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await job.wait(timeout_ms=500)
        assert 0.45 <= time.monotonic() - start < 3
        await wait_for_state(job, "running")  # the timeout left the run alone
        await job.cancel()
        result = await job.wait(timeout_ms=20_000)
        assert result.state == "cancelled"
        await job.cancel()  # a finished run: no effect, no error
        assert (await job.status()).state == "cancelled"

    run(server, body)


def test_retry_and_conflict(server: Server) -> None:
    async def body(client: spool.AsyncClient) -> None:
        job = await client.submit("echo", "again")
        later = await client.submit("sleep", {"seconds": 30}, delay="1h")
        with pytest.raises(spool.Conflict) as info:
            await later.retry()
        assert info.value.run_status == "scheduled"
        await later.cancel()
        await job.wait(timeout_ms=30_000)
        again = await job.retry()
        assert again.id != job.id and (await again.status()).retry_of == job.id
        assert (await again.wait(timeout_ms=30_000)).output == "again"

    run(server, body)


def test_fifty_concurrent_submits_with_one_key_make_one_run(server: Server) -> None:
    key = "race-" + uuid.uuid4().hex
    session = "race-" + uuid.uuid4().hex[:8]

    async def body(client: spool.AsyncClient) -> None:
        jobs = await asyncio.gather(*(
            client.submit("echo", {"i": i}, idempotency_key=key, session_id=session) for i in range(50)))
        ids = {j.id for j in jobs}
        assert len(ids) == 1, ids
        created = [j for j in jobs if j.accepted is not None and not j.accepted.existing]
        assert len(created) == 1
        pages = [p async for p in client.list(session_id=session)]
        assert sum(len(p) for p in pages) == 1 and pages[0].total == 1
        # Many tasks waiting on one client at once.
        results = await asyncio.gather(*(j.wait(timeout_ms=30_000) for j in jobs[:10]))
        assert {r.id for r in results} == ids and all(r.ok for r in results)

    run(server, body)


def test_many_runs_from_many_tasks(server: Server) -> None:
    async def body(client: spool.AsyncClient) -> None:
        async def one(i: int) -> object:
            job = await client.submit("echo", {"i": i})
            return (await job.wait(timeout_ms=60_000)).output

        outputs = await asyncio.gather(*(one(i) for i in range(20)))
        assert outputs == [{"i": i} for i in range(20)]

    run(server, body)


def test_events_async_for_with_a_cut(server: Server) -> None:
    async def body(client: spool.AsyncClient) -> None:
        job = await client.submit("countdown", {"n": 8, "delay": 0.05})
        got: list[spool.Event] = []
        stream = job.events()
        async for ev in stream:
            got.append(ev)
            if len(got) == 3:
                await stream._cut()
            if len(got) == 4:
                assert ev.seq == 4 and stream.reconnects == 1
        assert [e.seq for e in got] == list(range(1, len(got) + 1)) and stream._skipped == 0
        assert got[-1].type == "result" and got[-1].result == {"counted": 8}
        text = "".join(e.text or "" for e in got if e.type == "output")
        assert text.split()[-1] == "liftoff"

        # Stopping early closes the stream.
        short = job.events()
        async with short:
            first = await short.__anext__()
        assert first.seq == 1
        with pytest.raises(StopAsyncIteration):
            await short.__anext__()

    run(server, body)


def test_stats_recipes_and_list(server: Server) -> None:
    async def body(client: spool.AsyncClient) -> None:
        stats = await client.stats()
        assert stats.total >= 0
        names = {r.name for r in await client.recipes()}
        assert {"echo", "countdown", "sleep", "flaky"} <= names

    run(server, body)
