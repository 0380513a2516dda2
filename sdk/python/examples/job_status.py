"""Submit a run and poll its status (the Job SDK's status() example).

    spool server &                      # or: go run ./cmd/spool server
    python3 examples/job_status.py
"""

import spool


def main() -> None:
    with spool.Client() as client:  # SPOOL_URL and SPOOL_TOKEN, else http://127.0.0.1:8005
        job = client.submit("echo", {"message": "hello"})
        print(f"Submitted: {job.id}")

        status = job.status()
        print(f"Job {job.id}: {status.state}")  # pending, running, completed, failed or cancelled

        job.wait(timeout_ms=60_000)
        status = job.status()
        if status.state == "completed" and status.result is not None:
            print(f"Output: {status.result.output}")
        elif status.state == "failed":
            print(f"Error: {status.error}")


if __name__ == "__main__":
    main()
