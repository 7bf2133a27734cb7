"""Stateful property test of the schedule invariants (hypothesis).

Random interleavings of: spawning processes, sequential and concurrent
scheduling from many tasks across processes, re-posting known messages,
stale requests, and node restarts.  After every step, for every process:
slots are exactly 0..n-1, the hash chain re-derives, and every acknowledged
assignment is in the store with the slot the client was told.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aonode import wallet as wallet_mod
from aonode.config import Mode, NodeConfig
from aonode.errors import Expired
from aonode.message import Message
from aonode.node import Node
from aonode.scheduler.hashchain import verify_chain
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from tests.conftest import sign_message, sign_process

NODE_WALLET = wallet_mod.generate("ed25519")
USER = wallet_mod.generate("ed25519")


class ScheduleMachine(RuleBasedStateMachine):
    mode = Mode.LOCAL_CONFIRMATION

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="aonode-prop-"))
        self.node = self._run(self._start())
        self.processes: list[str] = []
        self.acked: dict[str, dict[str, int]] = {}  # process -> message id -> slot
        self.messages: dict[str, list[Message]] = {}

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    async def _start(self) -> Node:
        node = Node(
            NodeConfig(data_dir=self.dir, mode=self.mode),
            wallets=[NODE_WALLET],
            store=SQLiteStore(self.dir / "s.sqlite3"),
            timestamps=OfflineSource(),
        )
        await node.start()
        return node

    def teardown(self) -> None:
        self._run(self.node.stop())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ack(self, pid: str, message: Message, slot: int) -> None:
        known = self.acked[pid].get(message.id)
        assert known is None or known == slot, "a known message got a second slot"
        self.acked[pid][message.id] = slot
        self.messages[pid].append(message)

    @rule()
    @precondition(lambda self: len(self.processes) < 4)
    def spawn(self) -> None:
        proc = sign_process(USER, NODE_WALLET.address, data=str(len(self.processes)).encode())
        a = self._run(self.node.schedule(proc))
        assert a.slot == 0
        self.processes.append(proc.id)
        self.acked[proc.id] = {}
        self.messages[proc.id] = []
        self._ack(proc.id, proc, 0)

    @rule(which=st.integers(0, 3), count=st.integers(1, 4))
    @precondition(lambda self: self.processes)
    def schedule_sequentially(self, which: int, count: int) -> None:
        pid = self.processes[which % len(self.processes)]
        for _ in range(count):
            m = sign_message(USER, pid)
            self._ack(pid, m, self._run(self.node.schedule(m)).slot)

    @rule(picks=st.lists(st.integers(0, 3), min_size=2, max_size=24))
    @precondition(lambda self: self.processes)
    def schedule_concurrently(self, picks: list[int]) -> None:
        targets = [self.processes[p % len(self.processes)] for p in picks]
        msgs = [sign_message(USER, pid) for pid in targets]

        async def many() -> list[int]:
            return [a.slot for a in await asyncio.gather(*(self.node.schedule(m) for m in msgs))]

        slots = self._run(many())
        for pid, m, slot in zip(targets, msgs, slots, strict=True):
            self._ack(pid, m, slot)
        for pid in set(targets):  # each process got distinct slots from its own requests
            mine = [s for p, s in zip(targets, slots, strict=True) if p == pid]
            assert len(set(mine)) == len(mine)

    @rule(which=st.integers(0, 3), nth=st.integers(0, 1000))
    @precondition(lambda self: self.processes)
    def repost_known(self, which: int, nth: int) -> None:
        pid = self.processes[which % len(self.processes)]
        known = self.messages[pid]
        m = known[nth % len(known)]
        a = self._run(self.node.schedule(m))
        assert a.slot == self.acked[pid][m.id]

    @rule(which=st.integers(0, 3))
    @precondition(lambda self: self.processes)
    def stale_request(self, which: int) -> None:
        pid = self.processes[which % len(self.processes)]
        m = sign_message(USER, pid)

        async def stale() -> None:
            process = await self.node.process_message(pid)
            assert process is not None
            server = await self.node.registry.find_or_start(process)
            try:
                await server.schedule(m, deadline=asyncio.get_running_loop().time() - 1)
            except Expired:
                return
            raise AssertionError("a stale request was assigned")

        self._run(stale())
        assert self._run(self.node.store.by_message(pid, m.id)) is None

    @rule()
    def restart(self) -> None:
        self._run(self.node.stop())
        self.node = self._run(self._start())

    @invariant()
    def schedules_are_gap_free_chained_and_complete(self) -> None:
        if self.mode is Mode.AGGRESSIVE:  # acked before durable: check after a drain only
            return
        for pid in self.processes:
            self._check(pid)

    def _check(self, pid: str) -> None:
        page = self._run(self.node.schedule_page(pid, 0, None, 1000))
        slots = [a.slot for a in page.assignments]
        assert slots == list(range(len(slots))), f"gap or duplicate in {slots}"
        assert (
            verify_chain((a.slot, a.header.message, a.header.hash_chain) for a in page.assignments)
            is None
        )
        stored = {a.header.message: a.slot for a in page.assignments}
        for mid, slot in self.acked[pid].items():
            assert stored.get(mid) == slot, f"acknowledged {mid} at {slot} is missing"


class AggressiveMachine(ScheduleMachine):
    """Aggressive mode acknowledges before the write; a drained restart keeps all."""

    mode = Mode.AGGRESSIVE

    @rule()
    def restart(self) -> None:
        super().restart()
        for pid in self.processes:
            self._check(pid)


_settings = settings(
    max_examples=30,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSchedule = ScheduleMachine.TestCase
TestSchedule.settings = _settings
TestScheduleAggressive = AggressiveMachine.TestCase
TestScheduleAggressive.settings = _settings
