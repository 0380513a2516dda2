"""Fixtures that build the real ``spool`` binary and run servers on loopback.

The binary is built once per session with ``go build`` from the repository root (or taken
from ``SPOOL_TEST_BINARY``). Without Go the tests that need a server are skipped, except
when ``CI=true``: then they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

import spool

REPO_ROOT = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "admin-token"
SCOPED_TOKEN = "team-a-token"
SCOPED_WORKSPACE = "team-a"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A running ``spool server``."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = ADMIN_TOKEN, *, retry_queue_full: bool = False,
               queue_full_timeout: float = 300.0) -> spool.Client:
        """A client of this server; token None sends none."""
        return spool.Client(self.url, token=token or "", retry_queue_full=retry_queue_full,
                            queue_full_timeout=queue_full_timeout)

    def async_client(self, token: str | None = ADMIN_TOKEN) -> spool.AsyncClient:
        """An async client of this server; create it inside the event loop that uses it."""
        return spool.AsyncClient(self.url, token=token or "")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture(scope="session")
def spool_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spool binary: SPOOL_TEST_BINARY, else built from the repository."""
    given = os.environ.get("SPOOL_TEST_BINARY")
    if given:
        return Path(given)
    go = shutil.which("go")
    if go is None:
        msg = "Go is not installed, so the spool binary cannot be built for the real-server tests"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("bin") / "spool"
    proc = subprocess.run([go, "build", "-o", str(out), "./cmd/spool"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"go build ./cmd/spool failed:\n{proc.stdout}{proc.stderr}")
    return out


def start_server(binary: Path, workdir: Path, *args: str) -> Server:
    """Start ``spool server`` on a free loopback port and wait until /readyz answers 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOOL_", "PRAISONAI_"))}
    last_err = ""
    for _ in range(3):  # a port taken between free_port() and the bind is tried again
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                [str(binary), "server", "--host", "127.0.0.1", "--port", str(port),
                 "--db", str(workdir / "spool.db"), "--recipes", str(REPO_ROOT / "recipes"),
                 "--log-format", "json", *args],
                cwd=workdir, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Server(url, proc, log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError as exc:
                last_err = str(exc)
            time.sleep(0.05)
        server.stop()
        last_err = f"{last_err}\n{server.log_tail()}"
        if "address already in use" not in last_err:
            break
    pytest.fail(f"spool server did not become ready: {last_err}")


@pytest.fixture(scope="session")
def server(spool_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with two tokens: one for every workspace and one limited to team-a."""
    work = tmp_path_factory.mktemp("server")
    tokens = work / "tokens.yaml"
    tokens.write_text(f"- token: {ADMIN_TOKEN}\n- token: {SCOPED_TOKEN}\n  workspace: {SCOPED_WORKSPACE}\n")
    srv = start_server(spool_binary, work, "--tokens", str(tokens), "--max-concurrent", "20")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def small_queue_server(spool_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that executes nothing and holds at most one queued run."""
    work = tmp_path_factory.mktemp("small-queue")
    srv = start_server(spool_binary, work, "--workers", "0", "--max-queue-size", "1")
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[spool.Client]:
    with server.client() as c:
        yield c


def collect_events(stream: spool.EventStream, timeout: float = 60,
                   on_event: Callable[[list[spool.Event]], None] | None = None) -> list[spool.Event]:
    """Iterate the stream to its end in a helper thread, calling on_event after each event,
    and fail (instead of hanging) when it has not ended within timeout seconds."""
    events: list[spool.Event] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for ev in stream:
                events.append(ev)
                if on_event is not None:
                    on_event(events)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"the event stream did not end within {timeout}s; got {[(e.seq, e.type) for e in events]}")
    if errors:
        raise errors[0]
    assert events and events[-1].terminal, f"the stream ended without a terminal event: {events}"
    return events
