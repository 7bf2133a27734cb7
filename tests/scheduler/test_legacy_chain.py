"""The legacy hash chain the legacy surface shows: the legacy SU's rule, computed
from the stored schedule in any order of reads, with bounded memoisation."""

from __future__ import annotations

import hashlib

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.legacy_chain import LegacyChains
from aonode.wallet import Wallet
from tests.conftest import NodeFactory, sign_message, sign_process


def expected(pid: str, schedule: list[Assignment]) -> dict[int, str]:
    """research/peers.md: slot 0 sha256(pid); slot n sha256(id of n-1 ‖ chain of n-1)."""
    out: dict[int, str] = {}
    link = hashlib.sha256(b64url_decode(pid)).digest()
    for a in schedule:
        if a.slot > 0:
            link = hashlib.sha256(b64url_decode(schedule[a.slot - 1].id) + link).digest()
        out[a.slot] = b64url_encode(link)
    return out


async def test_any_order_of_reads_gives_the_legacy_chain(
    make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    await node.schedule(proc)
    for i in range(40):
        await node.schedule(sign_message(user_wallet, proc.id, data=b"%d" % i))
    rows = await node.store.slots(proc.id, 0, 40, 100)
    schedule = [Assignment.from_stored(r) for r in rows]
    want = expected(proc.id, schedule)

    chains = LegacyChains(node.store, every=8)
    got: dict[int, str] = {}
    # far ahead first (a walk from slot 0), then back, then single slots, then all
    got.update(await chains.of(proc.id, schedule[30:35]))
    got.update(await chains.of(proc.id, schedule[3:9]))
    got.update(await chains.of(proc.id, [schedule[39]]))
    got.update(await chains.of(proc.id, [schedule[0]]))
    assert got == {s: want[s] for s in got}
    assert await chains.of(proc.id, schedule) == want
    # a fresh memo and a non-consecutive list agree too
    picked = [schedule[s] for s in (2, 17, 18, 33)]
    assert await LegacyChains(node.store, every=4).of(proc.id, picked) == {
        s: want[s] for s in (2, 17, 18, 33)
    }
    assert await chains.of(proc.id, []) == {}
