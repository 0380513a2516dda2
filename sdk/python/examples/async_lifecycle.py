"""The Job SDK's lifecycle with asyncio: submit, poll, wait, and read the result; plus a
stream of the run's live output.

    python3 examples/async_lifecycle.py
"""

import asyncio

import spool


async def main() -> None:
    async with spool.AsyncClient() as client:
        # Submit
        job = await client.submit("countdown", {"n": 5, "delay": 0.1})
        accepted = job.accepted
        assert accepted is not None
        print(f"Job {accepted.id} accepted ({accepted.state})")

        # Poll
        status = await job.status()
        print(f"Status: {status.state}")

        # Stream the output as it is produced
        async for event in job.events():
            if event.type == "output" and event.text:
                print(f"  | {event.text.rstrip()}")
            elif event.type == "progress" and event.progress:
                print(f"  {event.progress.percentage:.0f}% {event.progress.current_step or ''}")

        # Wait and get the result
        result = await job.wait(timeout_ms=300_000)  # 5 minutes
        print(f"Output: {result.output}")

        # Many at once: one client serves many tasks.
        jobs = await asyncio.gather(*(client.submit("echo", {"i": i}) for i in range(5)))
        results = await asyncio.gather(*(j.wait(timeout_ms=60_000) for j in jobs))
        print([r.output for r in results])


if __name__ == "__main__":
    asyncio.run(main())
