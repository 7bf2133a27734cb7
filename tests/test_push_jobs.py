"""Async push jobs on a cluster worker: resumed and walked only where their process is owned.

A real node on a real SQLite file, made a cluster worker by ``Node.route``
(with ``owns`` and ``hand_off``) before it starts.  The jobs name processes
the node does not know, so each walk ends at once (``unknown-process``, a
permanent failure) and deletes its record: the records left tell which jobs
were walked here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from aonode.codec.b64 import b64url_encode
from aonode.config import NodeConfig
from aonode.errors import Overloaded
from aonode.node import Node
from aonode.push.jobs import HandOff
from aonode.push.ledger import JOB, PushJob
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.push_helpers import until

MINE = b64url_encode(bytes(range(32)))
THEIRS = b64url_encode(bytes(range(32, 64)))

Worker = Callable[..., Awaitable[Node]]


@pytest.fixture
async def worker(tmp_path: Path, ed_wallet: Wallet) -> AsyncIterator[Worker]:
    """A node that owns ``MINE`` only (or everything: ``cluster=False``), started."""
    nodes: list[Node] = []
    db = tmp_path / "aonode.sqlite3"

    async def make(
        *, jobs: Sequence[PushJob] = (), hand_off: HandOff | None = None, cluster: bool = True
    ) -> Node:
        store = SQLiteStore(db)
        await store.open()
        for job in jobs:  # what a previous run left pending
            await store.put_record(job.record())
        await store.close()
        node = Node(
            NodeConfig(data_dir=tmp_path),
            wallets=[ed_wallet],
            store=SQLiteStore(db),
            timestamps=OfflineSource(),
        )
        if cluster:
            node.route(
                node.scheduling,
                node.processes,
                node.wait_durable_here,
                cron=True,
                owns=lambda pid: pid == MINE,
                hand_off=hand_off,
            )
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.stop()


async def left(node: Node) -> list[PushJob]:
    jobs = [PushJob.from_record(r) for r in await node.store.records(JOB)]
    return sorted(jobs, key=lambda job: job.key)


async def test_start_resumes_only_the_jobs_of_owned_processes(worker: Worker) -> None:
    jobs = [PushJob(MINE, 1), PushJob(MINE, 2), PushJob(THEIRS, 1)]
    node = await worker(jobs=jobs)
    await node.pusher.idle()
    assert await left(node) == [PushJob(THEIRS, 1)]  # the owner of THEIRS resumes it


async def test_a_single_node_resumes_every_job(worker: Worker) -> None:
    node = await worker(jobs=[PushJob(MINE, 1), PushJob(THEIRS, 1)], cluster=False)
    await node.pusher.idle()
    assert await left(node) == []


async def test_a_job_for_another_workers_process_is_handed_to_it(worker: Worker) -> None:
    given: list[PushJob] = []
    refusals = [Overloaded("cluster worker 1 is not answering; retry")]

    async def hand_off(job: PushJob) -> None:
        if refusals:  # the owner is restarting: told again until it answers
            raise refusals.pop()
        given.append(job)

    node = await worker(hand_off=hand_off)
    await node.pusher.accept(THEIRS, 4)
    assert node.pusher.pending() == 0  # not walked here

    async def told() -> bool:
        return bool(given)

    await until(told, "the owner was told")
    assert given == [PushJob(THEIRS, 4)] and not refusals
    assert await left(node) == [PushJob(THEIRS, 4)]  # durable until the owner's walk ends

    await node.pusher.accept(MINE, 5)  # its own: walked here, never handed off
    await node.pusher.idle()
    assert given == [PushJob(THEIRS, 4)]
    assert await left(node) == [PushJob(THEIRS, 4)]


async def test_an_adopted_job_is_walked_once_by_its_owner(worker: Worker) -> None:
    node = await worker()
    job = PushJob(MINE, 7)
    await node.store.put_record(job.record())  # as the worker that accepted it did
    node.pusher.adopt(job)
    node.pusher.adopt(job)  # told twice (a retried hand-off): one walk
    assert node.pusher.pending() == 1
    await node.pusher.idle()
    assert await left(node) == []
