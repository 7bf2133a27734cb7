"""The scheduling use cases driven directly: no HTTP, no Node.

:class:`Scheduling` gets its parts explicitly (a real SQLite store, wallets,
an offline block source, a spawn check), so admission is tested on its own:
what is refused, why, and that a refusal leaves the schedule untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aonode.config import Mode
from aonode.errors import InvalidMessage, NotFound, NotOurProcess
from aonode.message import Message
from aonode.scheduler.service import Scheduling, SchedulingOptions
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process


class Refused(InvalidMessage):
    """What the test's spawn check raises for a process it refuses."""


class SpawnCheck:
    """Records every spawn it is asked about; refuses those tagged ``Refuse``."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, message: Message) -> None:
        self.seen.append(message.id)
        if "refuse" in message.keys:
            raise Refused("this spawn is refused", code="refused")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "svc.sqlite3")
    await s.open()
    yield s
    await s.close()


def scheduling(store: SQLiteStore, wallet: Wallet, check: SpawnCheck, **opts: object) -> Scheduling:
    return Scheduling(
        [wallet],
        store,
        OfflineSource(),
        spawn_check=check,
        options=SchedulingOptions(**opts),  # type: ignore[arg-type]
    )


async def test_spawn_then_message_and_a_repost_keeps_its_slot(
    store: SQLiteStore, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    check = SpawnCheck()
    svc = scheduling(store, ed_wallet, check)
    proc = sign_process(user_wallet, ed_wallet.address)
    msg = sign_message(user_wallet, proc.id)
    try:
        assert (await svc.schedule(proc)).slot == 0
        assert check.seen == [proc.id]  # the spawn was checked, once
        assert (await svc.schedule(msg)).slot == 1
        assert (await svc.schedule(msg)).slot == 1  # re-post: its slot, not a new one
        assert (await svc.schedule(proc)).slot == 0
        assert (await svc.slot_info(proc.id))["current"] == 1
        page = await svc.schedule_page(proc.id)
        assert [a.header.message for a in page.assignments] == [proc.id, msg.id]
    finally:
        await svc.stop()
    # a fresh Scheduling on the same store: the re-post is found durable
    again = scheduling(store, ed_wallet, check)
    try:
        assert (await again.schedule(msg)).slot == 1
        assert await again.known_processes() == [proc.id]
    finally:
        await again.stop()


async def test_admission_refusals_change_nothing(
    store: SQLiteStore, ed_wallet: Wallet, user_wallet: Wallet, rsa_wallet: Wallet
) -> None:
    check = SpawnCheck()
    svc = scheduling(store, ed_wallet, check, mode=Mode.AGGRESSIVE)
    try:
        ghost = sign_process(user_wallet, ed_wallet.address)  # never scheduled
        with pytest.raises(NotFound) as unknown:
            await svc.schedule(sign_message(user_wallet, ghost.id))
        assert unknown.value.code == "unknown-process"
        theirs = sign_process(user_wallet, rsa_wallet.address)  # names another scheduler
        with pytest.raises(NotOurProcess):
            await svc.schedule(theirs)
        refused = sign_process(user_wallet, ed_wallet.address, extra=[("Refuse", "yes")])
        with pytest.raises(Refused):
            await svc.schedule(refused)
        assert check.seen == [theirs.id, refused.id]  # the spawn check runs before ownership
        assert svc.registry.processes() == []  # no server was started for any of them
        assert await store.processes() == []
        with pytest.raises(NotFound):
            await svc.require_process(refused.id)
    finally:
        await svc.stop()


async def test_assign_to_names_the_process_without_a_spawn_check(
    store: SQLiteStore, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    check = SpawnCheck()
    svc = scheduling(store, ed_wallet, check)
    proc = sign_process(user_wallet, ed_wallet.address)
    other = sign_process(user_wallet, ed_wallet.address, data=b"other")
    try:
        await svc.schedule(proc)
        # a process message assigned to an existing process is a plain message there
        a = await svc.schedule(other, assign_to=proc.id)
        assert (a.slot, a.header.process) == (1, proc.id)
        assert check.seen == [proc.id]
        with pytest.raises(NotFound):
            await svc.schedule(sign_message(user_wallet, proc.id), assign_to="x" * 43)
    finally:
        await svc.stop()
