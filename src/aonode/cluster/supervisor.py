"""The supervisor: N worker processes behind one host:port, kept alive.

It holds what must be held once for the whole node: the data-directory lock
(handed to every worker as an inherited descriptor, datadir.py), the wallet
file (created here, before any worker could race to create it), the port (checked
free here, then bound by every worker with SO_REUSEPORT so the kernel spreads
connections over them) and a pipe whose end tells each worker that the
supervisor is gone.  A worker that dies is started again while the others keep
serving; SIGTERM/SIGINT stop every worker (each drains, as a single node does)
and then the supervisor.  A worker that fails before it was ever ready (a store
that cannot be opened, a bad configuration) stops the whole cluster: restarting
it could not help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aonode.cluster.worker import WorkerSpec
from aonode.config import NodeConfig
from aonode.datadir import DataDirLock
from aonode.errors import ConfigError
from aonode.http.server import ensure_port_free, free_port
from aonode.node import load_wallets
from aonode.quotas_shared import create_table
from aonode.store import open_store

log = logging.getLogger("aonode.cluster")

#: (event, worker index, pid): "ready" when a worker answers, "exited" when it died
Observer = Callable[[str, int, int], None]

STOP_GRACE = 30.0  # seconds a worker may drain after SIGTERM before SIGKILL
RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0)  # after consecutive deaths of one worker


class Supervisor:
    """Runs ``workers`` node processes for ``config`` (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        workers: int,
        *,
        log_level: str = "warning",
        log_format: str = "text",
        observe: Observer | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {workers}")
        self.config = config.validated()
        open_store(self.config.store_url)  # a bad store URL: refused here, not by N workers
        self.workers = workers
        self.log_level = log_level
        self.log_format = log_format
        self.observe = observe
        self.pids: list[int | None] = [None] * workers
        self.address = ""
        self.sock_dir: Path | None = None  # where the workers' channel sockets are
        self._stopping = False
        self._procs: dict[int, asyncio.subprocess.Process] = {}

    async def run(
        self, *, on_ready: Callable[[str], None] | None = None, stop: asyncio.Event | None = None
    ) -> int:
        """Serve until ``stop`` (default: SIGTERM/SIGINT); 0, or 1 if a worker never started."""
        config = self.config
        lock = DataDirLock(config.data_dir)  # whatever the store: see node.py
        lock.acquire()  # DataDirLocked: another node (or cluster) serves this directory
        sock_dir: Path | None = None
        alive_r, alive_w = os.pipe()
        try:
            self.address = load_wallets(config)[0].address  # creates wallet.json once
            await prepare_store(config.store_url)
            port = config.port or free_port(config.host)
            ensure_port_free(config.host, port)
            config = replace(config, port=port)
            sock_dir = Path(tempfile.mkdtemp(prefix="aonode-cluster-"))  # short: 108-byte cap
            self.sock_dir = sock_dir
            quota_table = sock_dir / "quotas"  # every worker's buckets, one table
            create_table(quota_table, config.quota_keys)
            specs = [
                WorkerSpec(
                    config=config,
                    index=i,
                    count=self.workers,
                    sock_dir=sock_dir,
                    lock_fd=lock.fd,
                    parent_fd=alive_r,
                    log_level=self.log_level,
                    log_format=self.log_format,
                    quota_table=quota_table,
                )
                for i in range(self.workers)
            ]
            if stop is None:  # a CLI run: the signals are ours
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
            return await self._supervise(specs, stop, on_ready)
        finally:
            os.close(alive_w)  # any worker still running sees EOF and stops
            os.close(alive_r)
            if sock_dir is not None:
                shutil.rmtree(sock_dir, ignore_errors=True)
            lock.release()

    async def _supervise(
        self,
        specs: list[WorkerSpec],
        stop: asyncio.Event,
        on_ready: Callable[[str], None] | None,
    ) -> int:
        first: list[asyncio.Future[str]] = [
            asyncio.get_running_loop().create_future() for _ in specs
        ]
        failed = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            keepers = [
                tg.create_task(self._keep(spec, first[spec.index], failed)) for spec in specs
            ]
            started = asyncio.gather(*first)
            stopped = tg.create_task(stop.wait())
            give_up = tg.create_task(failed.wait())
            waits: set[asyncio.Future[Any]] = {started, stopped, give_up}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if started.done() and not started.exception() and not stop.is_set():
                url = started.result()[0]
                log.info("cluster of %d workers ready at %s", len(specs), url)
                if on_ready is not None:
                    on_ready(url)
                await asyncio.wait({stopped, give_up}, return_when=asyncio.FIRST_COMPLETED)
            else:
                started.cancel()
                with contextlib.suppress(BaseException):
                    await started
            self._stopping = True
            await self._stop_all()
            stopped.cancel()
            give_up.cancel()
            for keeper in keepers:
                keeper.cancel()
        return 1 if failed.is_set() else 0

    async def _keep(
        self, spec: WorkerSpec, first: asyncio.Future[str], failed: asyncio.Event
    ) -> None:
        """Run worker ``spec.index`` and start it again each time it dies."""
        deaths = 0
        while not self._stopping:
            proc = await self._spawn(spec)
            assert proc.stdout is not None
            url = await _ready_line(proc.stdout)
            if url:
                deaths = 0
                self.pids[spec.index] = proc.pid
                if not first.done():
                    first.set_result(url)
                self._notify("ready", spec.index, proc.pid)
                await proc.stdout.read()  # nothing more is written; EOF when it exits
            code = await proc.wait()
            self.pids[spec.index] = None
            self._procs.pop(spec.index, None)
            if self._stopping:
                return
            self._notify("exited", spec.index, proc.pid)
            if not first.done():  # never ready: restarting cannot help
                log.error("worker %d failed to start (exit %s)", spec.index, code)
                first.set_exception(ConfigError(f"worker {spec.index} failed to start"))
                failed.set()
                return
            log.warning("worker %d (pid %d) died (exit %s); restarting", spec.index, proc.pid, code)
            await asyncio.sleep(RESTART_DELAYS[min(deaths, len(RESTART_DELAYS) - 1)])
            deaths += 1

    async def _spawn(self, spec: WorkerSpec) -> asyncio.subprocess.Process:
        fds = (spec.parent_fd,) if spec.lock_fd is None else (spec.parent_fd, spec.lock_fd)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aonode.cluster.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,  # a terminal's ^C reaches the supervisor, which forwards it
        )
        self._procs[spec.index] = proc
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(spec))
        await proc.stdin.drain()
        proc.stdin.close()
        return proc

    async def _stop_all(self) -> None:
        procs = list(self._procs.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                log.error("worker pid %d did not stop in %.0f s: killed", proc.pid, STOP_GRACE)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def _notify(self, event: str, index: int, pid: int) -> None:
        if self.observe is not None:
            self.observe(event, index, pid)


async def _ready_line(stdout: asyncio.StreamReader) -> str:
    """The URL of a worker's ``ready <url>`` line; "" when it exits before one.

    Anything else a library prints on the worker's stdout is passed on to ours.
    """
    while line := await stdout.readline():
        if line.startswith(b"ready "):
            return line.decode().removeprefix("ready ").strip()
        sys.stdout.write(line.decode(errors="replace"))
    return ""


async def prepare_store(url: str) -> None:
    """Create and migrate the store once, before the workers open it together.

    Two processes initialising one fresh SQLite file at the same moment can meet
    in its lock upgrade, where SQLite answers "database is locked" at once instead
    of waiting: a worker failed to start that way, and with it the cluster.
    """
    if not url.lower().startswith("sqlite:"):  # PostgreSQL migrates under an advisory lock
        return
    store = open_store(url)
    await store.open()
    await store.close()
