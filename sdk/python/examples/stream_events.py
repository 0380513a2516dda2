"""Follow a run's events live. The stream resumes by itself after a dropped connection,
without repeating or skipping an event.

    python3 examples/stream_events.py
"""

import spool


def main() -> None:
    with spool.Client() as client:
        job = client.submit("countdown", {"n": 5, "delay": 0.2})
        for event in job.events():
            if event.type == "output":
                print(event.text, end="")
            elif event.type == "progress" and event.progress:
                print(f"[{event.progress.percentage:3.0f}%] {event.progress.current_step or ''}")
            elif event.type == "status":
                print(f"-- {event.status}")
            elif event.terminal:
                print(f"-- {event.type}: {event.result if event.type == 'result' else event.error}")


if __name__ == "__main__":
    main()
