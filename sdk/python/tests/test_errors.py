"""Every typed error, raised by a real spool server (or by its absence)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import pytest

import spool
from conftest import SCOPED_TOKEN, SCOPED_WORKSPACE, Server, free_port


def test_not_found(client: spool.Client) -> None:
    with pytest.raises(spool.NotFound) as info:
        client.get("run_doesnotexist")
    assert info.value.status == 404 and info.value.code == "not_found" and "run_doesnotexist" in str(info.value)
    job = client.job("run_doesnotexist")
    calls: list[Callable[[], object]] = [job.status, job.wait, job.result, job.retry, lambda: next(job.events())]
    for call in calls:
        with pytest.raises(spool.NotFound):
            call()
    # cancel is a no-op only for finished runs; an unknown one is still an error.
    with pytest.raises(spool.NotFound):
        job.cancel()


def test_conflict(client: spool.Client) -> None:
    job = client.submit("echo", "x", delay="1h")
    try:
        with pytest.raises(spool.Conflict) as info:
            job.retry()
        assert info.value.status == 409 and info.value.run_status == "scheduled"
        with pytest.raises(spool.Conflict):
            job.result()
    finally:
        job.cancel()


def test_validation_errors_name_the_fields(client: spool.Client) -> None:
    with pytest.raises(spool.ValidationError) as info:
        client.submit("echo", priority="soon")
    err = info.value
    assert err.status == 400 and err.code == "invalid" and isinstance(err, ValueError)
    assert [f.field for f in err.fields] == ["priority"] and err.fields[0].reason

    with pytest.raises(spool.ValidationError) as info:
        client.submit("no-such-recipe")
    assert info.value.status == 422 and info.value.code == "unknown_recipe"
    assert "no-such-recipe" in info.value.detail and "echo" in info.value.detail

    with pytest.raises(spool.ValidationError) as info:
        client.submit("countdown", {"n": 0})
    assert info.value.status in (400, 422) and info.value.fields

    with pytest.raises(spool.ValidationError) as info:
        client.submit("echo", idempotency_scope="everywhere")
    assert any(f.field == "idempotency_scope" for f in info.value.fields)


def test_unauthorized(server: Server) -> None:
    with server.client(token=None) as anonymous, pytest.raises(spool.Unauthorized) as info:
        anonymous.stats()
    assert info.value.status == 401 and info.value.code == "unauthorized"
    with server.client(token="wrong") as wrong, pytest.raises(spool.Unauthorized):
        wrong.submit("echo")


def test_forbidden_and_workspace_scoping(server: Server, client: spool.Client) -> None:
    with server.client(token=SCOPED_TOKEN) as scoped:
        with pytest.raises(spool.Forbidden) as info:
            scoped.submit("echo", workspace="someone-else")
        assert info.value.status == 403 and info.value.code == "forbidden"
        mine = scoped.submit("echo", "mine")
        assert mine.status().workspace == SCOPED_WORKSPACE
        # A run of another workspace does not exist for this token.
        other = client.submit("echo", "theirs", workspace="default")
        with pytest.raises(spool.NotFound):
            scoped.get(other.id)


def test_too_large(client: spool.Client) -> None:
    with pytest.raises(spool.TooLarge) as info:
        client.submit("echo", "x" * (5 << 20))
    assert info.value.status == 413 and info.value.code == "too_large"


def test_server_unavailable_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with spool.Client(url, token="t") as c, pytest.raises(spool.ServerUnavailable) as info:
        c.submit("echo")
    assert info.value.code == "unavailable" and url in str(info.value)

    async def main() -> None:
        async with spool.AsyncClient(url) as ac:
            with pytest.raises(spool.ServerUnavailable):
                await ac.stats()
            with pytest.raises(spool.ServerUnavailable):
                await ac.job("run_x").wait(timeout_ms=1000)

    asyncio.run(main())


def test_queue_full(small_queue_server: Server) -> None:
    with small_queue_server.client() as c:
        blocker = c.submit("echo", "fills the queue")  # nothing executes on this server
        try:
            with pytest.raises(spool.QueueFull) as info:
                c.submit("echo", "one too many")
            err = info.value
            assert err.status == 503 and err.code == "queue_full"
            assert err.retry_after is not None and err.retry_after > 0
            # Asked to retry, but for less time than Retry-After: it gives up at once.
            with small_queue_server.client(retry_queue_full=True, queue_full_timeout=0.1) as impatient:
                start = time.monotonic()
                with pytest.raises(spool.QueueFull):
                    impatient.submit("echo")
                assert time.monotonic() - start < err.retry_after
        finally:
            blocker.cancel()

        async def main() -> None:
            async with small_queue_server.async_client() as ac:
                b = await ac.submit("echo")
                try:
                    with pytest.raises(spool.QueueFull):
                        await ac.submit("echo")
                finally:
                    await b.cancel()

        asyncio.run(main())


class _CancelOnRetry(logging.Handler):
    """Frees the queue when the client logs that it will retry a full queue."""

    def __init__(self, job: spool.Job) -> None:
        super().__init__(logging.INFO)
        self.job = job
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "queue full" in record.getMessage():
            self.retries += 1
            if self.retries == 1:
                self.job.cancel()


def test_retry_queue_full_honours_retry_after(small_queue_server: Server) -> None:
    with small_queue_server.client() as c:
        blocker = c.submit("echo", "fills the queue")
        retry_after = 0.0
        try:
            with pytest.raises(spool.QueueFull) as info:
                c.submit("echo")
            retry_after = info.value.retry_after or 0.0
            handler = _CancelOnRetry(blocker)
            logger = logging.getLogger("spool")
            logger.addHandler(handler)
            old_level = logger.level
            logger.setLevel(logging.INFO)
            try:
                with small_queue_server.client(retry_queue_full=True, queue_full_timeout=60) as patient:
                    start = time.monotonic()
                    job = patient.submit("echo", "got in")
                    elapsed = time.monotonic() - start
            finally:
                logger.removeHandler(handler)
                logger.setLevel(old_level)
            assert handler.retries == 1
            assert elapsed >= retry_after * 0.95, f"retried after {elapsed:.2f}s, Retry-After was {retry_after}s"
            assert c.get(job.id).state == "pending"
            c.job(job.id).cancel()
        finally:
            blocker.cancel()
