"""The push ledger across nodes: two nodes sharing one store, signing the same
outbox entries at once, end up sending the same message for each entry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aonode import wallet as wallet_mod
from aonode.codec.b64 import b64url_encode
from aonode.push.ledger import Ledger
from aonode.store.sqlite import SQLiteStore

SENDER = b64url_encode(bytes(range(32)))
TARGET = b64url_encode(bytes(range(32, 64)))


@pytest.mark.parametrize("entries", [1, 7])
async def test_two_nodes_racing_on_one_slot_send_one_message_per_entry(
    tmp_path: Path, entries: int
) -> None:
    store = SQLiteStore(tmp_path / "shared.sqlite3")
    await store.open()
    try:
        # two nodes, two wallets: their signatures (and so ids) would differ
        one = Ledger(store, wallet_mod.generate("ed25519"))
        two = Ledger(store, wallet_mod.generate("ed25519"))
        outbox = {
            i: {"Target": TARGET, "Data": f"entry {i}", "Tags": [{"name": "N", "value": str(i)}]}
            for i in range(1, entries + 1)
        }
        got_one, got_two = await asyncio.gather(
            one.deliveries(SENDER, 5, "origin", outbox),
            two.deliveries(SENDER, 5, "origin", outbox),
        )
        assert sorted(got_one) == sorted(got_two) == list(range(1, entries + 1))
        for i in outbox:
            assert got_one[i].id == got_two[i].id
        # and a third look later (a restart) sees the same messages again
        again = await Ledger(store, wallet_mod.generate("ed25519")).deliveries(
            SENDER, 5, "origin", outbox
        )
        assert {i: m.id for i, m in again.items()} == {i: m.id for i, m in got_one.items()}
    finally:
        await store.close()
