"""The examples in sdk/python/examples run against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ADMIN_TOKEN, Server

SDK = Path(__file__).resolve().parents[1]

EXPECTED = {
    "job_status.py": ["Submitted: run_", "Output: {'message': 'hello'}"],
    "job_wait.py": ["{'counted': 3}", "completed after"],
    "job_cancel.py": [": cancelled"],
    "async_lifecycle.py": ["accepted (pending)", "  | liftoff", "Output: {'counted': 5}",
                           "[{'i': 0}, {'i': 1}, {'i': 2}, {'i': 3}, {'i': 4}]"],
    "stream_events.py": ["liftoff", "-- result: {'counted': 5}"],
    "errors.py": ["not found:", "invalid priority:", "unknown_recipe:"],
}


def test_every_example_is_checked() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in (SDK / "examples").glob("*.py"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(server: Server, name: str) -> None:
    env = {**os.environ, "SPOOL_URL": server.url, "SPOOL_TOKEN": ADMIN_TOKEN,
           "PYTHONPATH": os.pathsep.join([str(SDK / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SDK / "examples" / name)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for want in EXPECTED[name]:
        assert want in proc.stdout, f"{want!r} not in the output of {name}:\n{proc.stdout}"
