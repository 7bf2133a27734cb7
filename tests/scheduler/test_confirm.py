"""Each confirmation mode answers at its own stage, through the one decision point.

A real :class:`SchedulerServer` on a real SQLite store and a real
:class:`Uploader`; the store's append and the upload target are gated by
events the test opens, so "not answered yet" is observed at a known point
(the stage before is reached, the mode's own stage is held back), never
after a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aonode.codec.wire import MessageRecord
from aonode.config import Mode
from aonode.errors import UploadTimeout
from aonode.message import Message
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.confirm import Confirmation, Stage, stage_of
from aonode.scheduler.server import SchedulerServer, ServerOptions
from aonode.scheduler.timestamp import OfflineSource
from aonode.scheduler.upload import Uploader
from aonode.store.base import AssignmentRecord
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process

SETTLE = 60.0  # a bound on waiting for a signal, so a bug fails instead of hanging


class GatedStore(SQLiteStore):
    """A real SQLite store whose appends wait until ``gate`` is open."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = asyncio.Event()  # an append was called: the entry is signed
        self.gate = asyncio.Event()

    async def append(self, assignment: AssignmentRecord, body: MessageRecord) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().append(assignment, body)


class GatedTarget:
    """An upload target (the uploader's transport seam) that accepts once ``gate`` opens."""

    url = "gated://target"

    def __init__(self) -> None:
        self.entered = asyncio.Event()  # a bundle was posted: its slots are durable
        self.gate = asyncio.Event()
        self.items: list[bytes] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def post(self, items: list[bytes]) -> str:
        self.entered.set()
        await self.gate.wait()
        self.items.extend(items)
        return "gated-tx"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[GatedStore]:
    s = GatedStore(tmp_path / "gated.sqlite3")
    await s.open()
    yield s
    s.gate.set()
    await s.close()


async def started(
    store: SQLiteStore, wallet: Wallet, process: Message, mode: Mode, uploads: Uploader | None
) -> SchedulerServer:
    server = SchedulerServer(
        process,
        wallets=[wallet],
        store=store,
        timestamps=OfflineSource(),
        options=ServerOptions(mode=mode),
        uploads=uploads,
    )
    await server.start()
    return server


def test_each_mode_names_its_stage() -> None:
    assert stage_of(Mode.AGGRESSIVE, uploading=True) is Stage.SIGNED
    assert stage_of(Mode.LOCAL_CONFIRMATION, uploading=True) is Stage.DURABLE
    assert stage_of(Mode.REMOTE_CONFIRMATION, uploading=True) is Stage.UPLOADED
    # uploads in the background only: the remote stage is never waited on in other modes
    assert not Confirmation(Mode.LOCAL_CONFIRMATION).waits_for_upload


async def test_aggressive_answers_once_signed_before_durable(
    store: GatedStore, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    proc = sign_process(user_wallet, ed_wallet.address)
    server = await started(store, ed_wallet, proc, Mode.AGGRESSIVE, None)
    loop = asyncio.get_running_loop()
    a = await asyncio.wait_for(server.schedule(proc, deadline=loop.time() + SETTLE), SETTLE)
    assert a.slot == 0
    assert await store.by_message(proc.id, proc.id) is None  # answered, not yet durable
    store.gate.set()
    await server.stop()
    stored = await store.by_message(proc.id, proc.id)
    assert stored is not None and stored.assignment.slot == 0


async def test_local_confirmation_answers_only_once_durable(
    store: GatedStore, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    proc = sign_process(user_wallet, ed_wallet.address)
    server = await started(store, ed_wallet, proc, Mode.LOCAL_CONFIRMATION, None)
    loop = asyncio.get_running_loop()
    reply = asyncio.ensure_future(server.schedule(proc, deadline=loop.time() + SETTLE))
    await asyncio.wait_for(store.entered.wait(), SETTLE)  # signed, its append waiting
    assert not reply.done()
    store.gate.set()
    a = await asyncio.wait_for(reply, SETTLE)
    stored = await store.by_message(proc.id, proc.id)
    assert stored is not None and stored.assignment.slot == a.slot == 0
    await server.stop()


async def test_remote_confirmation_answers_only_once_uploaded_and_so_does_a_repost(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    store = SQLiteStore(tmp_path / "remote.sqlite3")
    await store.open()
    target = GatedTarget()
    uploads = Uploader(store, target)
    await uploads.start()
    proc = sign_process(user_wallet, ed_wallet.address)
    server = await started(store, ed_wallet, proc, Mode.REMOTE_CONFIRMATION, uploads)
    loop = asyncio.get_running_loop()
    try:
        reply = asyncio.ensure_future(server.schedule(proc, deadline=loop.time() + SETTLE))
        await asyncio.wait_for(target.entered.wait(), SETTLE)  # durable, its upload held
        assert await store.by_message(proc.id, proc.id) is not None
        assert not reply.done()
        # a re-post of the durable message waits for the upload too: here past its deadline
        with pytest.raises(UploadTimeout, match="slot 0 of the local schedule"):
            await server.schedule(proc, deadline=loop.time())
        target.gate.set()
        a = await asyncio.wait_for(reply, SETTLE)
        assert a.slot == 0 and target.items  # the target holds the slot's items
        again = await asyncio.wait_for(server.schedule(proc), SETTLE)
        assert again.slot == 0
    finally:
        target.gate.set()
        await server.stop()
        await uploads.stop()
        await store.close()


async def test_a_durable_repost_is_answered_at_once_below_the_upload_stage(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    proc = sign_process(user_wallet, ed_wallet.address)
    msg = sign_message(user_wallet, proc.id)
    store = SQLiteStore(tmp_path / "repost.sqlite3")
    await store.open()
    try:
        server = await started(store, ed_wallet, proc, Mode.LOCAL_CONFIRMATION, None)
        await server.schedule(proc)
        first = await server.schedule(msg)
        await server.stop()
        stored = await store.by_message(proc.id, msg.id)
        assert stored is not None
        durable = Assignment.from_stored(stored)
        for mode in (Mode.AGGRESSIVE, Mode.LOCAL_CONFIRMATION):
            # a deadline already past: only an answer that waits for nothing succeeds
            got = await Confirmation(mode).stored(
                durable, deadline=0.0, process=proc.id, message=msg.id
            )
            assert got.slot == first.slot == 1
    finally:
        await store.close()
