"""Cancel a running job (the Job SDK's cancel() example). Cancelling a job that has
already finished has no effect and raises nothing.

    python3 examples/job_cancel.py
"""

import spool


def main() -> None:
    with spool.Client() as client:
        job = client.submit("sleep", {"seconds": 60})
        job.cancel()
        result = job.wait(timeout_ms=30_000)
        print(f"Job {job.id}: {result.state}")  # cancelled
        job.cancel()  # no effect now


if __name__ == "__main__":
    main()
