"""Property over HTTP: random interleavings against ONE ``aonode serve --workers 2``.

Hypothesis draws a list of operations: spawn a process, schedule a message to a
known process (alone, or a concurrent burst across processes), re-post an
acknowledged message (it keeps its slot), read a schedule page with random
``from``/``to``/``limit`` (out of range: a 400 ``bad-parameter`` from either
worker), read a process's slot.  Every request goes over a fresh connection, so
it lands on either worker, and the processes (some owned by each worker) are
reached through the forwarded path about half of the time.  The node is started
once for the module and its schedules grow from example to example; after each
example, for every process ever spawned:

* its slots are exactly 0..n-1 (no gap, no duplicate) and n is the number of
  messages acknowledged for it (this test is the node's only client);
* every acknowledged message is at the slot it was acknowledged with;
* the hash chain re-derives: ``chain(n) = sha256(chain(n-1) ‖ id(n))``;
* a page read through either worker is the matching slice of the full schedule,
  with ``continues``/``next`` saying exactly where a limit cut it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aonode import wallet as wallet_mod
from aonode.cluster.shard import shard_of
from aonode.http.server import free_port
from aonode.message import Message
from aonode.scheduler.hashchain import verify_chain
from tests.conftest import sign_message, sign_process
from tests.test_crash import start_node, stop_node

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}
USER = wallet_mod.generate("ed25519")
EXAMPLES = 20  # about 20 s here; the schedules grow with every example
MAX_PROCESSES = 8  # later spawns schedule a message instead: every check reads them all


class Cluster:
    """The running node and what it acknowledged, across all examples."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str, address: str) -> None:
        self.loop, self.url, self.address = loop, url, address
        self.pids: list[str] = []
        self.acked: dict[str, dict[str, int]] = {}  # pid -> message id -> slot
        self.sent: dict[str, list[Message]] = {}  # pid -> the messages acknowledged

    def __repr__(self) -> str:  # hypothesis prints it with a failing example
        return f"Cluster({self.url}, {len(self.pids)} processes)"

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One 2-worker node for the module, in an event loop of its own (hypothesis
    calls the test synchronously, once per example)."""
    loop = asyncio.new_event_loop()
    data_dir: Path = tmp_path_factory.mktemp("property") / "node"
    node, url, address = loop.run_until_complete(
        start_node(data_dir, free_port("127.0.0.1"), workers=2)
    )
    try:
        c = Cluster(loop, url, address)
        while {shard_of(pid, 2) for pid in c.pids} != {0, 1}:  # both workers own some
            c.run(spawn(c))
        yield c
    finally:
        loop.run_until_complete(stop_node(node))
        loop.close()


async def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:  # a new connection: either worker
        return await client.request(method, url, **kwargs)


# -- operations ---------------------------------------------------------------

Spawn = st.tuples(st.just("spawn"))
Message_ = st.tuples(st.just("message"), st.integers(0, 2**16))
Burst = st.tuples(st.just("burst"), st.lists(st.integers(0, 2**16), min_size=2, max_size=12))
Repost = st.tuples(st.just("repost"), st.integers(0, 2**16), st.integers(0, 2**16))
Page = st.tuples(
    st.just("page"),
    st.integers(0, 2**16),
    st.integers(-1, 12),  # from
    st.none() | st.integers(-1, 14),  # to
    st.none() | st.integers(0, 6),  # limit
)
Slot = st.tuples(st.just("slot"), st.integers(0, 2**16))
OPERATIONS = st.lists(st.one_of(Spawn, Message_, Burst, Repost, Page, Slot), max_size=12)


async def spawn(c: Cluster) -> None:
    p = sign_process(USER, c.address, data=os.urandom(8))
    r = await request("POST", f"{c.url}/~scheduler@1.0/schedule", content=p.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    assert r.json()["slot"] == 0
    c.pids.append(p.id)
    c.acked[p.id] = {p.id: 0}
    c.sent[p.id] = [p]


async def schedule(c: Cluster, pid: str) -> None:
    m = sign_message(USER, pid)
    r = await request("POST", f"{c.url}/{pid}/schedule", content=m.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    slot = r.json()["slot"]
    assert slot not in c.acked[pid].values(), f"slot {slot} of {pid} acknowledged twice"
    c.acked[pid][m.id] = slot
    c.sent[pid].append(m)


async def repost(c: Cluster, pid: str, pick: int) -> None:
    """A known message again: its existing slot, never a second one."""
    m = c.sent[pid][pick % len(c.sent[pid])]
    path = "/~scheduler@1.0/schedule" if m.id == pid else f"/{pid}/schedule"
    r = await request("POST", f"{c.url}{path}", content=m.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    assert r.json()["slot"] == c.acked[pid][m.id]


async def page(c: Cluster, pid: str, first: int, last: int | None, limit: int | None) -> None:
    params = {"from": first, **({} if last is None else {"to": last})}
    if limit is not None:
        params["limit"] = limit
    r = await request("GET", f"{c.url}/{pid}/schedule", params=params)
    if first < 0 or (last is not None and (last < 0 or last < first)) or limit == 0:
        assert r.status_code == 400, r.text  # bad input, whichever worker read it
        assert r.json()["error"]["code"] == "bad-parameter"
        return
    assert r.status_code == 200, r.text
    got = r.json()
    n = len(c.acked[pid])
    top = n - 1 if last is None else min(last, n - 1)
    wanted = list(range(first, top + 1))
    cut = limit is not None and len(wanted) > limit
    if cut:
        assert limit is not None
        wanted = wanted[:limit]
    assert [a["slot"] for a in got["assignments"]] == wanted, params
    assert got["continues"] is cut
    assert got["next"] == (wanted[-1] + 1 if cut else None)
    by_slot = {slot: mid for mid, slot in c.acked[pid].items()}
    assert [a["message"] for a in got["assignments"]] == [by_slot[s] for s in wanted]


async def slot(c: Cluster, pid: str) -> None:
    r = await request("GET", f"{c.url}/{pid}/slot")
    assert r.status_code == 200, r.text
    assert r.json()["current"] == len(c.acked[pid]) - 1


async def apply(c: Cluster, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "spawn" and len(c.pids) < MAX_PROCESSES:
        await spawn(c)
        return
    if kind == "spawn":  # enough processes: a message to the first one instead
        kind, op = "message", ("message", 0)
    pid = c.pids[op[1] % len(c.pids)] if kind != "burst" else ""
    if kind == "message":
        await schedule(c, pid)
    elif kind == "burst":  # concurrent, across processes (and so across workers)
        await asyncio.gather(*(schedule(c, c.pids[k % len(c.pids)]) for k in op[1]))
    elif kind == "repost":
        await repost(c, pid, op[2])
    elif kind == "page":
        await page(c, pid, op[2], op[3], op[4])
    else:
        await slot(c, pid)


# -- invariants ---------------------------------------------------------------


async def full_schedule(c: Cluster, pid: str) -> list[dict[str, Any]]:
    """All of ``pid``'s assignments, paged with a small limit (so over both workers)."""
    assignments: list[dict[str, Any]] = []
    first: int | None = 0
    while first is not None:
        r = await request("GET", f"{c.url}/{pid}/schedule", params={"from": first, "limit": 16})
        assert r.status_code == 200, r.text
        got = r.json()
        assignments += got["assignments"]
        first = got["next"] if got["continues"] else None
    return assignments


async def check(c: Cluster) -> None:
    await asyncio.gather(*(check_process(c, pid) for pid in c.pids))


async def check_process(c: Cluster, pid: str) -> None:
    """The invariants of one process's schedule (see the module's docstring)."""
    one = await full_schedule(c, pid)
    r = await request("GET", f"{c.url}/{pid}/schedule")
    assert r.status_code == 200, r.text
    assert r.json()["assignments"] == one, "pages differ from one whole read"
    slots = [a["slot"] for a in one]
    assert slots == list(range(len(slots))), f"gap or duplicate in {pid}: {slots}"
    assert len(slots) == len(c.acked[pid]), "a slot nobody was told about"
    stored = {a["message"]: a["slot"] for a in one}
    for mid, at in c.acked[pid].items():
        assert stored.get(mid) == at, f"acknowledged {mid} (slot {at}) is not there"
    links = [(a["slot"], a["message"], a["hash-chain"]) for a in one]
    assert verify_chain(links) is None, verify_chain(links)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    # no shrinking: the node's schedules carry over from example to example, so a
    # failing example is not replayable alone; the failure's message says enough
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
def test_random_interleavings_keep_every_schedule_whole(
    cluster: Cluster, operations: list[tuple[Any, ...]]
) -> None:
    for op in operations:
        cluster.run(apply(cluster, op))
    cluster.run(check(cluster))
