"""Scheduler test fixtures: a real local Arweave node (arlocal) per test.

arlocal is the npm package pinned in ``tests/interop/package.json``; running
the real thing keeps the gateway client honest about the JSON shapes an
Arweave node actually returns.  Each instance gets its own port and its own
``HOME`` (arlocal keeps its SQLite database under ``~/.arlocal``), so tests
never share chain state.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parent / "interop"
ARLOCAL_BIN = INTEROP / "node_modules" / "arlocal" / "bin" / "index.js"
READY_LINE = "arlocal started on port"
START_TIMEOUT = 60.0


@dataclass
class Arlocal:
    url: str
    port: int
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Terminate, and kill if arlocal ignores SIGTERM (its knex pool can keep node alive)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pump(proc: subprocess.Popen[str], output: list[str], events: queue.Queue[str]) -> None:
    """Drain arlocal's stdout so it never blocks on a full pipe; report readiness and exit."""
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line.rstrip("\n"))
        if READY_LINE in line:
            events.put("ready")
    events.put("exit")


def _start_arlocal(home: Path, port: int | None = None) -> Arlocal:
    if not ARLOCAL_BIN.is_file():
        pytest.fail(
            f"arlocal is not installed at {ARLOCAL_BIN}: "
            "run ./scripts/test (it installs the npm clients)"
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: run ./scripts/test (it installs the npm clients)")
    home.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    proc = subprocess.Popen(
        [node, str(ARLOCAL_BIN), str(port), "--hidelogs"],
        cwd=INTEROP,
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    instance = Arlocal(url=f"http://127.0.0.1:{port}", port=port, process=proc)
    events: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc, instance.output, events), daemon=True).start()
    try:
        event = events.get(timeout=START_TIMEOUT)
    except queue.Empty:
        event = "timeout"
    if event != "ready":
        instance.stop()
        log = "\n".join(instance.output[-40:])
        pytest.fail(f"arlocal did not start ({event}) on port {port}; output:\n{log}")
    return instance


@pytest.fixture
def arlocal_factory(tmp_path: Path) -> Iterator[Callable[..., Arlocal]]:
    """Start as many independent arlocal nodes as a test needs; all are killed afterwards.

    ``port``: listen there (e.g. where a node was told its upload target is,
    while nothing listened yet).
    """
    started: list[Arlocal] = []

    def start(port: int | None = None) -> Arlocal:
        instance = _start_arlocal(tmp_path / f"arlocal-home-{len(started)}", port)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture
def arlocal(arlocal_factory: Callable[..., Arlocal]) -> Arlocal:
    return arlocal_factory()
