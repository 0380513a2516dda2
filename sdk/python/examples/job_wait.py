"""Submit a run and wait for its result (the Job SDK's wait() example).

    python3 examples/job_wait.py
"""

import spool


def main() -> None:
    with spool.Client() as client:
        job = client.submit("countdown", {"n": 3, "delay": 0.2})
        try:
            result = job.wait(timeout_ms=60_000)  # wait up to 60 seconds
        except TimeoutError:
            print(f"Job {job.id} is still running; it goes on without us")
            return
        print(result.output)  # {'counted': 3}
        print(f"{result.state} after {result.duration_seconds:.2f}s, attempt {result.attempt}")


if __name__ == "__main__":
    main()
