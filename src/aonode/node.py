"""The node: the composition root.

:class:`Node` builds the parts from a :class:`NodeConfig` (wallets, store,
block-info source, uploads, the scheduling use cases, the process device,
push, cron, the verifier, instruments and metrics), wires them to each other
and owns their start/stop order.  It decides nothing itself: scheduling is
:class:`~aonode.scheduler.service.Scheduling`'s, computing the process
device's.  The few delegating methods below keep the callers that still hold
the node (``http/``, the CLI, push's :class:`~aonode.push.host.PushHost`)
working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aonode import wallet as wallet_mod
from aonode.config import NodeConfig
from aonode.cron.task import Dispatch
from aonode.cron.timer import Cron, CronPolicy
from aonode.datadir import DataDirLock, secure_sqlite, sqlite_path
from aonode.errors import NotFound
from aonode.instrument import Instruments
from aonode.live import LocalLive
from aonode.message import Message
from aonode.ops.metrics import LiveSources, NodeMetrics
from aonode.process.device import ProcessDevice
from aonode.process.runtime.base import Limits, Results
from aonode.push import Pusher, PushLimits
from aonode.push.jobs import HandOff
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.registry import Registry
from aonode.scheduler.service import SchedulePage, Scheduling, SchedulingOptions
from aonode.scheduler.timestamp import TimestampSource, make_source
from aonode.scheduler.upload import make_uploader
from aonode.services import Identity, Processes, Services
from aonode.services import Scheduling as SchedulingUseCase
from aonode.store import Ownership, Store, open_store
from aonode.store.base import CommitObservable
from aonode.verifier import Verifier
from aonode.wallet import Wallet

log = logging.getLogger("aonode.node")

VERSION = "0.1.0"

__all__ = ["VERSION", "Node", "SchedulePage", "load_wallets", "node_id"]


def node_id(data_dir: Path) -> str:
    """This node's identity across restarts (``node-id`` in the data directory)."""
    path = data_dir / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        made = secrets.token_hex(8)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(made + "\n")
        tmp.replace(path)
        return made


def load_wallets(config: NodeConfig) -> list[Wallet]:
    """The main wallet (generated on first start) first, then the extra ones."""
    path = config.wallet_path
    if path.exists():
        main = wallet_mod.load(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        main = wallet_mod.generate("rsa")
        wallet_mod.save(main, path)
        log.info("generated wallet %s at %s", main.address, path)
    wallets = [main]
    for extra in config.wallets:
        w = wallet_mod.load(extra)
        if all(w.address != have.address for have in wallets):
            wallets.append(w)
    return wallets


async def _no_routes(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, bytes]:
    """The cron dispatch of a node started without HTTP: nothing to fire through."""
    raise NotFound(f"this node serves no routes: {method} {target} cannot fire")


class Node:
    """One aonode instance (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        wallets: list[Wallet] | None = None,
        store: Store | None = None,
        timestamps: TimestampSource | None = None,
    ) -> None:
        self.config = config.validated()
        self.instruments = Instruments()  # what every part reports to (aonode.instrument)
        self.wallets = wallets if wallets is not None else load_wallets(config)
        self.store = store if store is not None else open_store(config.store_url)
        # A store shared by several nodes (PostgreSQL): one owner per process (a lease).
        self.url = config.advertise_url or f"http://{config.host}:{config.port}"
        # Checked once: isinstance on a runtime Protocol costs ~20 µs (a request's worth
        # of 10 % of the scheduling rate when done per request).
        self.leases: Ownership | None = self.store if isinstance(self.store, Ownership) else None
        if self.leases is not None:
            # <node>#<incarnation>: a restarted node takes its own leases back at once
            owner = f"{self.address}/{node_id(config.data_dir)}#{secrets.token_hex(4)}"
            self.leases.use_leases(owner, self.url)
        self.timestamps = timestamps if timestamps is not None else make_source(config.gateway)
        self.uploads = make_uploader(self.config, self.wallets, self.store)  # None: no target
        self._signer = ThreadPoolExecutor(config.sign_threads, thread_name_prefix="aonode-sign")
        self.scheduling = Scheduling(
            self.wallets,
            self.store,
            self.timestamps,
            spawn_check=self._spawn_check,
            options=SchedulingOptions(
                mode=self.config.mode,
                queue_size=self.config.queue_size,
                abort_seconds=self.config.abort_seconds,
                page_limit=self.config.page_limit,
                url=self.url,
            ),
            leases=self.leases,
            uploads=self.uploads,
            signer=self._signer,
            instruments=self.instruments,
        )
        self.processes = ProcessDevice(
            self.store,
            snapshot_slots=config.snapshot_slots,
            heavy_snapshot_slots=config.wasm_snapshot_slots,
            snapshot_seconds=config.snapshot_seconds,
            max_idle=config.worker_max_idle,
            gateway=config.gateway,
            async_cache=config.async_cache,
            cache_dir=config.data_dir / "wasm-cache",
            limits=Limits(lua_memory=config.lua_memory),
        )
        self.processes.recent_assignments = self.scheduling.durable_assignments
        # what push schedules and computes through (a cluster worker routes them: route())
        self._routed: SchedulingUseCase = self.scheduling
        self._computing: Processes = self.processes
        self._wait_elsewhere: Callable[[str, int], Awaitable[None]] | None = None
        self._cron_here = True
        self._owns: Callable[[str], bool] | None = None  # None: every process is this node's
        self._hand_off: HandOff | None = None
        self._unloader: asyncio.Task[None] | None = None
        self.push_limits = PushLimits(
            config.push_max_depth,
            config.push_max_messages,
            retry_max_seconds=config.push_retry_seconds,
        )
        self.pusher = Pusher(self, self.push_limits)
        self.cron = Cron(
            self.store,
            self.wallets[0],
            CronPolicy(
                operator_token=config.operator_token,
                max_per_owner=config.cron_max_per_owner,
                max_tasks=config.cron_max_tasks,
                min_interval_ms=config.cron_min_interval_ms,
            ),
            owner_of=self.scheduling.process_owner,
        )
        # one node per data directory (datadir.py), whatever the store: the
        # directory holds the node's identity (wallet, node-id), and two nodes of
        # one identity on a shared PostgreSQL would take each other's leases
        self._db_file = sqlite_path(self.store.url)
        self.dir_lock = DataDirLock(config.data_dir)
        self.verifier = Verifier(threads=max(1, (os.cpu_count() or 2) - 1))
        self.started_at = time.time()
        # metrics is one instrument; every part reports to self.instruments
        self.metrics = NodeMetrics(
            self.config.mode.value,
            LiveSources(
                queue_depths=self.scheduling.queue_depths,
                workers=lambda: len(self.processes.info()),
                push_jobs=self.pusher.pending,
            ),
        )
        self.instruments.register(self.metrics)
        if isinstance(self.store, CommitObservable):
            self.store.commit_observer = self.instruments.committed
        self.verifier.observer = self.instruments.verified
        self.processes.on_applied = self.instruments.applied
        self.cron.observe(
            lambda task, status: self.instruments.cron_fired(task.id, status.error is None)
        )

    @property
    def address(self) -> str:
        return self.wallets[0].address

    @property
    def scheduler_map(self) -> Mapping[str, str]:
        """Scheduler address → node URL, as configured (``--scheduler-map``)."""
        return self.config.scheduler_map

    @property
    def addresses(self) -> list[str]:
        return [w.address for w in self.wallets]

    def route(
        self,
        scheduling: SchedulingUseCase,
        processes: Processes,
        wait_durable: Callable[[str, int], Awaitable[None]],
        *,
        cron: bool,
        owns: Callable[[str], bool] | None = None,
        hand_off: HandOff | None = None,
    ) -> None:
        """Make this node one worker of a cluster (``aonode.cluster``), before start().

        Push (the node is its host) schedules, waits and computes through the
        shard routing, so a walk reaching a process owned by another worker
        forwards there; ``cron``: whether this worker runs the timers (one
        worker does, or every task would fire once per worker).  ``owns``:
        whether this worker owns a process; the background work a previous
        run left (async pushes, the upload backlog) is resumed only for those,
        so once per cluster.  ``hand_off`` gives an async push accepted here
        for another worker's process to that worker.
        """
        self._routed = scheduling
        self._computing = processes
        self._wait_elsewhere = wait_durable
        self._cron_here = cron
        self._owns = owns
        self._hand_off = hand_off

    def services(self) -> Services:
        """What the web layer receives: the use cases and parts, never the node itself."""
        return Services(
            scheduling=self.scheduling,
            processes=self.processes,
            pusher=self.pusher,
            cron=self.cron,
            verifier=self.verifier,
            store=self.store,
            registry=self.registry,
            timestamps=self.timestamps,
            instruments=self.instruments,
            metrics=self._exposition,
            status=self.status,
            identity=Identity(self.address, self.addresses, self.url),
            config=self.config,
            live=LocalLive(self.registry, self.processes, self.pusher.failures),
        )

    async def _exposition(self) -> bytes:
        return self.metrics.exposition()

    async def start(self, dispatch: Dispatch | None = None) -> None:
        """Open the store and start every part, in dependency order.

        ``dispatch`` is how cron firings reach the node's routes: the HTTP
        layer hands in its app (``http/server.py``), so the node never imports
        the web layer.  A node started without one (no HTTP, e.g. a test of
        the scheduler) logs and skips each firing.
        """
        self.dir_lock.acquire()  # DataDirLocked: another node serves this directory
        try:
            if self._db_file is not None:
                secure_sqlite(self._db_file)
            await self.store.open()
        except BaseException:
            self.dir_lock.release()
            raise
        if self.uploads is not None:  # resumes the backlog a previous run left
            await self.uploads.start(scan=self.leases is None, owns=self._owns)
        await self.timestamps.start()
        self.verifier.start()
        self._unloader = asyncio.create_task(self.processes.run_unloader(), name="unloader")
        # resumes the async pushes a previous run left pending (this worker's own)
        await self.pusher.start(owns=self._owns, hand_off=self._hand_off)
        if self._cron_here:
            await self.cron.start(dispatch if dispatch is not None else _no_routes)

    async def stop(self) -> None:
        """Drain every scheduler queue, then close the store."""
        await self.cron.stop()  # first: its runs in flight still need the node
        await self.pusher.stop()  # running async pushes stop; their records resume them
        await self.scheduling.stop()
        if self.uploads is not None:  # what is not uploaded yet stays in the durable backlog
            await self.uploads.stop()
        if self._unloader is not None:
            self._unloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._unloader
        await self.processes.close()
        await self.verifier.stop()
        await self.timestamps.stop()
        await self.store.close()
        self._signer.shutdown(wait=True)
        self.dir_lock.release()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _spawn_check(self, message: Message) -> None:
        """A spawn is refused (400) now, not at its first compute: the process device decides."""
        await self.processes.check_spawn(message)  # 400 (device, module, image) now

    # -- use cases, delegated (for the callers that still hold the node) --

    async def wait_durable(self, process_id: str, slot: int) -> None:
        """Return once ``slot`` of ``process_id`` is durable, if this node gave it."""
        if self._wait_elsewhere is not None:
            await self._wait_elsewhere(process_id, slot)
        else:
            await self.wait_durable_here(process_id, slot)

    async def wait_durable_here(self, process_id: str, slot: int) -> None:
        """:meth:`wait_durable` for a slot this node's own actor gave (not routed)."""
        server = self.scheduling.registry.find(process_id)
        if server is not None:
            await server.wait_durable(slot)

    async def compute(self, process_id: str, slot: int) -> Results:
        """The results of ``slot`` (push's walk), once it is durable."""
        worker = await self._computing.worker(await self.require_process(process_id))
        await self.wait_durable(process_id, slot)  # aggressive mode answers before it is stored
        return await worker.compute(slot)

    @property
    def registry(self) -> Registry:
        return self.scheduling.registry

    async def schedule(
        self,
        message: Message,
        *,
        path: str = "compute",
        query_target: str | None = None,
        assign_to: str | None = None,
    ) -> Assignment:
        """Give ``message`` a slot (see :meth:`Scheduling.schedule`)."""
        return await self._routed.schedule(
            message, path=path, query_target=query_target, assign_to=assign_to
        )

    async def process_message(self, process_id: str) -> Message | None:
        return await self.scheduling.process_message(process_id)

    async def require_process(self, process_id: str) -> Message:
        return await self.scheduling.require_process(process_id)

    async def schedule_page(
        self, process_id: str, first: int = 0, last: int | None = None, limit: int | None = None
    ) -> SchedulePage:
        return await self.scheduling.schedule_page(process_id, first, last, limit)

    async def slot_info(self, process_id: str) -> dict[str, Any]:
        return await self.scheduling.slot_info(process_id)

    async def status(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "addresses": self.addresses,
            "processes": await self.scheduling.known_processes(),
            "mode": self.config.mode.value,
            "store": self.store.url,
            "nodes": await self.leases.nodes() if self.leases is not None else [],
            "timestamp-source": self.timestamps.status(),
            "version": VERSION,
            "workers": self.processes.info(),
            "push-jobs": self.pusher.pending(),
            "upload": self.uploads.status() if self.uploads is not None else None,
            "cluster": {"answered": 1, "of": 1, "here": 0},  # a cluster's merge says more
        }
