"""The package, its examples and its tests are clean under mypy --strict."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import in_ci

SDK = Path(__file__).resolve().parents[1]


def test_mypy_strict() -> None:
    if importlib.util.find_spec("mypy") is None:
        msg = f"mypy is not installed for {sys.executable} (Debian: apt-get install mypy)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(SDK / "pyproject.toml"),
         "src/spool", "examples", "tests"],
        cwd=SDK, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
