"""``/~dashboard/state`` of a 2-worker node: every worker's live state, wherever a poll lands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aonode.cluster import dashboard
from aonode.cluster.channel import Link, Listener
from aonode.cluster.dashboard import ClusterLive, merge
from aonode.cluster.shard import shard_of
from aonode.live import Live, LocalLive
from aonode.push.ledger import delivery_key
from aonode.wallet import Wallet
from tests.cluster.conftest import Cluster
from tests.cluster.test_routing import post
from tests.cluster.test_usecases import ANS, get, spawn_pair
from tests.conftest import LiveNode, sign_message, sign_process
from tests.process.test_device_http import LUA


def failure(process: str, slot: int, index: int, at: int) -> dict[str, Any]:
    return {
        "process": process,
        "slot": slot,
        "outbox-index": index,
        "target": "t" * 43,
        "reason": "no-route",
        "message": "no route",
        "status": 404,
        "node": None,
        "time": at,
    }


def share(
    actors: dict[str, tuple[int, int]], failures: list[dict[str, Any]], reported: int
) -> Live:
    keys = frozenset(delivery_key(f["process"], f["slot"], f["outbox-index"]) for f in failures)
    summary = {"open": len(keys), "reported": reported, "recent": failures}
    return Live.from_json(Live(actors, {}, summary, keys).to_json())  # as it crosses the channel


def test_merge_unions_actors_by_owner_and_failures_by_key() -> None:
    a, b = "a" * 43, "b" * 43
    owner_a = shard_of(a, 2)
    old, new = failure(a, 1, 1, at=10), failure(b, 2, 1, at=20)
    shares = {
        owner_a: share({a: (7, 2)}, [old], reported=0),  # loaded at start, reported before
        1 - owner_a: share({a: (3, 0), b: (5, 1)}, [old, new], reported=1),
    }
    got = merge(shares, here=1, of=2)
    assert got.actors[a] == (7, 2)  # the owner's row, not a stale one elsewhere
    assert got.actors[b] == (5, 1)
    assert got.push_failures == {"open": 2, "reported": 1, "recent": [new, old]}
    assert (got.here, got.answered, got.of) == (1, 2, 2)


async def test_a_worker_that_does_not_answer_is_left_out_and_counted(
    live: Callable[..., Awaitable[LiveNode]], user_wallet: Wallet, tmp_path: Path
) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address, extra=LUA)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    state = (await ln.client.get("/~dashboard/state")).json()
    assert state["workers"] == {"answered": 1, "of": 1, "here": 0}  # one shape for every node
    assert [(p["id"], p["slot"], p["live"]) for p in state["processes"]] == [(proc.id, 0, True)]

    node = ln.node
    local = LocalLive(node.registry, node.processes, node.pusher.failures)
    listener = Listener(tmp_path / "w1.sock", dashboard.handlers(local))
    await listener.start()
    peers = {1: Link(tmp_path / "w1.sock"), 2: Link(tmp_path / "w2.sock")}  # w2: restarting
    try:
        got = await ClusterLive(local, 0, 3, peers).live()
    finally:
        for link in peers.values():
            await link.close()
        await listener.close()
    assert (got.here, got.answered, got.of) == (0, 2, 3)
    assert got.actors == {proc.id: (0, 0)}


@pytest.mark.crash
async def test_every_worker_shows_every_process_and_every_push_failure(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url = cluster.url
    procs = await spawn_pair(cluster, user_wallet)  # procs[i] is owned by worker i
    sent = {procs[0].id: 3, procs[1].id: 5}
    for proc in procs:
        for k in range(sent[proc.id]):
            m = sign_message(user_wallet, proc.id, data=f"return {k}".encode(), action="Eval")
            assert (await post(url, f"/{proc.id}/schedule", m)).status_code == 200
    # a delivery no node can route, pushed from worker 0's process: one worker records it
    nobody = "x" * 43
    code = f"Send({{ Target = '{nobody}', Action = 'Hi' }})"
    m = sign_message(user_wallet, procs[0].id, data=code.encode(), action="Eval")
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(
            f"{url}/{procs[0].id}~process@1.0/push", content=m.item.raw, headers=ANS
        )
    assert r.status_code == 200, r.text
    assert r.json()["1"]["failure"] == "no-route", r.text
    slots = {procs[0].id: sent[procs[0].id] + 1, procs[1].id: sent[procs[1].id]}
    now = await get(url, f"/{procs[1].id}/now")  # computed on its owner, worker 1
    assert now.json()["slot"] == slots[procs[1].id]

    seen: set[int] = set()
    for _ in range(64):  # fresh connections until both workers have answered (2⁻⁶³ to fail)
        state = (await get(url, "/~dashboard/state")).json()
        assert state["workers"]["answered"] == 2 and state["workers"]["of"] == 2, state
        seen.add(state["workers"]["here"])
        rows = {p["id"]: p for p in state["processes"]}
        assert set(rows) == set(slots) and state["process-count"] == 2
        for pid, slot in slots.items():
            assert rows[pid]["live"] is True and rows[pid]["slot"] == slot, state
            assert rows[pid]["computed"] == slot, state
        failed = state["push-failures"]
        assert failed["open"] == 1 and failed["reported"] == 1, failed
        [recent] = failed["recent"]
        assert (recent["process"], recent["target"]) == (procs[0].id, nobody)
        if seen == {0, 1}:
            break
    assert seen == {0, 1}
