"""One worker of a cluster: a node on the shared port, plus its channel listener.

Started by the supervisor as ``python -m aonode.cluster.worker`` with a pickled
:class:`WorkerSpec` on stdin (parent to child, same user: nothing untrusted).
It adopts the supervisor's data-directory lock through an inherited descriptor,
serves HTTP on the port every worker shares (SO_REUSEPORT), answers its peers on
``w<index>.sock``, prints ``ready <url>`` once on stdout, and stops on SIGTERM,
SIGINT or the end of the supervisor's pipe (a killed supervisor takes its
workers with it instead of leaving orphans that hold the lock).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from aonode import gc_tuning, logs
from aonode.cluster import computing, dashboard, metrics, pushing, routing, status, timers
from aonode.cluster.channel import Link, Listener
from aonode.cluster.computing import ShardedProcesses, ShardedWaits
from aonode.cluster.dashboard import ClusterLive
from aonode.cluster.metrics import ClusterMetrics
from aonode.cluster.routing import ShardedScheduling
from aonode.config import NodeConfig
from aonode.errors import AONodeError
from aonode.http.app import quotas_of
from aonode.http.server import serve
from aonode.live import LocalLive
from aonode.node import Node
from aonode.quotas import Quotas
from aonode.quotas_shared import QuotaTable, shared_factory
from aonode.services import Timers


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What the supervisor tells worker ``index`` of ``count``."""

    config: NodeConfig  # with the port already chosen
    index: int
    count: int
    sock_dir: Path  # w<i>.sock of every worker
    lock_fd: int | None  # the supervisor's data-directory lock, inherited
    parent_fd: int  # read end of a pipe the supervisor holds open while it lives
    log_level: str = "warning"
    log_format: str = "text"
    quota_table: Path | None = None  # the buckets every worker shares (quotas_shared.py)


def socket_path(sock_dir: Path, index: int) -> Path:
    """Where worker ``index`` listens for its peers' calls."""
    return sock_dir / f"w{index}.sock"


async def run(spec: WorkerSpec, node: Node) -> None:
    """Serve until told to stop; the channel opens before the ready line."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def parent_gone() -> None:  # readable only at EOF: the supervisor is gone
        loop.remove_reader(spec.parent_fd)
        stop.set()

    loop.add_reader(spec.parent_fd, parent_gone)

    async def info(payload: bytes) -> bytes:
        return orjson.dumps(
            {
                "index": spec.index,
                "pid": os.getpid(),
                "address": node.address,
                "actors": node.scheduling.registry.processes(),  # scheduler actors running here
                "computing": sorted(node.processes.info()),  # process workers loaded here
                "timers": len(node.cron.listing()),  # cron tasks this worker's timer holds
            }
        )

    peers = {
        i: Link(socket_path(spec.sock_dir, i), name=str(i))
        for i in range(spec.count)
        if i != spec.index
    }
    index, count = spec.index, spec.count
    router = ShardedScheduling(node.scheduling, index, count, peers)
    processes = ShardedProcesses(node.processes, index, count, peers)
    local_wait = node.wait_durable_here
    waits = ShardedWaits(local_wait, index, count, peers)
    timers_here = index == timers.TIMERS
    node.route(
        router,
        processes,
        waits.wait_durable,
        cron=timers_here,
        owns=pushing.owner_test(index, count),
        hand_off=pushing.hand_off(count, peers),
    )
    live = LocalLive(node.registry, node.processes, node.pusher.failures)
    calls = {
        "info": info,
        **routing.handlers(node.scheduling),
        **computing.handlers(node.processes, node.scheduling, local_wait),
        **(timers.handlers(node.cron) if timers_here else {}),
        **metrics.handlers(node.metrics.exposition),
        **dashboard.handlers(live),
        **status.handlers(node.status),
        **pushing.handlers(node.pusher),
    }
    listener = Listener(socket_path(spec.sock_dir, spec.index), calls)
    await listener.start()

    def ready(url: str) -> None:
        sys.stdout.write(f"ready {url}\n")  # one write (PYTHONUNBUFFERED: print makes two)
        sys.stdout.flush()

    try:
        cron: Timers = (
            node.cron if timers_here else timers.ForwardedTimers(node.cron, peers[timers.TIMERS])
        )
        services = replace(
            node.services(),
            scheduling=router,
            processes=processes,
            cron=cron,
            metrics=ClusterMetrics(node.metrics.exposition, peers),
            live=ClusterLive(live, index, count, peers),
            status=status.ClusterStatus(node.status, index, count, peers),
            quotas=cluster_quotas(spec),
        )
        await serve(node, on_ready=ready, stop=stop, shared_port=True, services=services)
    finally:
        await listener.close()
        for link in peers.values():
            await link.close()


def cluster_quotas(spec: WorkerSpec) -> Quotas:
    """The node's quotas as one worker of ``spec.count`` charges them: buckets in
    the shared table (the whole node's), dry-run slots this worker's share."""
    table = QuotaTable(spec.quota_table) if spec.quota_table is not None else None
    buckets = shared_factory(table) if table is not None else None
    return quotas_of(spec.config, buckets=buckets, workers=spec.count)


def main() -> int:
    spec = pickle.load(sys.stdin.buffer)
    if not isinstance(spec, WorkerSpec):
        sys.stderr.write("aonode worker: no WorkerSpec on stdin\n")
        return 2
    logs.setup(spec.log_level, spec.log_format)
    try:
        node = Node(spec.config)
        if node.dir_lock is not None and spec.lock_fd is not None:
            node.dir_lock.adopt(spec.lock_fd)
        gc_tuning.tune()  # as a single-process serve
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run(spec, node))
    except AONodeError as exc:
        sys.stderr.write(f"aonode worker {spec.index}: {exc.message}\n")  # one write
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    # run from the imported module, so that the pickled WorkerSpec's class is ours
    from aonode.cluster.worker import main as worker_main

    sys.exit(worker_main())
