"""Typed errors, and retrying a full queue automatically.

    python3 examples/errors.py
"""

import spool


def main() -> None:
    # A full queue is retried after the server's Retry-After, for up to 5 minutes.
    with spool.Client(retry_queue_full=True, queue_full_timeout=300) as client:
        try:
            client.get("run_doesnotexist")
        except spool.NotFound as err:
            print(f"not found: {err.detail}")

        try:
            client.submit("echo", priority="soon")
        except spool.ValidationError as err:
            for field in err.fields:
                print(f"invalid {field.field}: {field.reason}")

        try:
            client.submit("no-such-recipe")
        except spool.ValidationError as err:
            print(f"{err.code}: {err.detail}")

        job = client.submit("echo", "done")
        job.wait(timeout_ms=60_000)
        try:
            job.result().raise_for_status()
        except spool.RunFailed as err:
            print(f"failed: {err}")
        except spool.SpoolError as err:  # the base of every API error
            print(f"{err.code} ({err.status}): {err.detail}")


if __name__ == "__main__":
    main()
