"""``~cron@1.0``: once / every / stop / tasks over real HTTP, durable across restarts.

No sleeps: tests wait on the cron's own events (its observer hook and
``Cron.wait_for``), each under a generous timeout.  "It did not fire again"
is shown by event order: a second, 100 ms "metronome" task fires twice
after the fact, so the loop has passed the moment the other task would have
fired.

Tasks are made by the operator (its bearer token) or by a signed request of
the process's owner; who else may not is tests/security/test_cron_authority.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aonode.codec import ans104, jsonform
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.cron.task import (
    FORMS,
    Caller,
    CronTask,
    RunStatus,
    next_due,
    now_ms,
    parse_duration,
)
from aonode.cron.timer import Cron, CronPolicy
from aonode.errors import BadParameter
from aonode.http.server import free_port
from aonode.store.base import Record
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.process.test_device_http import send, spawn_lua
from tests.test_crash import start_node, stop_node

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}
WAIT = 60.0
TOKEN = "test-operator-token"
OP = {"authorization": f"Bearer {TOKEN}"}
# the operator, and 100 ms intervals (the default minimum is 10 s)
CRON: dict[str, object] = {"operator_token": TOKEN, "cron_min_interval_ms": 1}
CRON_ENV = {"AONODE_OPERATOR_TOKEN": TOKEN, "AONODE_CRON_MIN_INTERVAL_MS": "1"}
TICK_HANDLER = (
    "Ticks = Ticks or 0\n"
    "Handlers.add('Tick', { Action = 'Tick' }, function(m)\n"
    "  Ticks = Ticks + 1\n"
    "  LastData = m.Data\n"
    "end)"
)


@pytest.fixture
def live(live: Live) -> Live:
    """conftest's ``live``, with an operator token and no practical minimum interval."""

    async def factory(**changes: object) -> LiveNode:
        return await live(**{**CRON, **changes})

    return factory


class Runs:
    """Every completed run of a node's cron tasks, in order."""

    def __init__(self, cron: Cron) -> None:
        self.cron = cron
        self.seen: list[tuple[str, RunStatus]] = []
        cron.observe(lambda task, status: self.seen.append((task.id, status)))

    def count(self, task: str) -> int:
        return sum(1 for t, _ in self.seen if t == task)

    async def until(self, predicate: Callable[[], bool]) -> None:
        await asyncio.wait_for(self.cron.wait_for(predicate), WAIT)

    async def metronome_ticks(self, ln: LiveNode, n: int = 2) -> None:
        """Let a 100 ms task fire ``n`` more times: the loop has moved on meanwhile."""
        task = await start(
            ln, "every", {"cron-path": "/~meta@1.0/info", "interval": "100-milliseconds"}
        )
        await self.until(lambda: self.count(task) >= n)
        await stop(ln, task)


async def start(ln: LiveNode, kind: str, params: dict[str, str]) -> str:
    r = await ln.client.post(f"/~cron@1.0/{kind}", params=params, headers=OP)
    assert r.status_code == 200, r.text
    task: str = r.json()["task"]
    return task


async def stop(ln: LiveNode, task: str) -> None:
    r = await ln.client.post("/~cron@1.0/stop", params={"task": task}, headers=OP)
    assert r.status_code == 200, r.text
    assert r.json() == {"task": task, "stopped": True}


async def tasks(ln: LiveNode) -> dict[str, dict[str, Any]]:
    r = await ln.client.get("/~cron@1.0/tasks")
    assert r.status_code == 200, r.text
    return {t["task"]: t for t in r.json()}


def runs_of(cron: Cron, task: str) -> int:
    """Firings started, as the task record counts them (-1: no such task)."""
    found = cron.get(task)
    return -1 if found is None else found.runs


async def current_slot(ln: LiveNode, pid: str) -> int:
    slot: int = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    return slot


# -- intervals -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("100-milliseconds", 100),
        ("1-millisecond", 1),
        ("1-second", 1000),
        ("5-seconds", 5000),
        ("2-Minutes", 120_000),
        ("1-minute", 60_000),
        ("1-hour", 3_600_000),
        ("3-hours", 10_800_000),
        ("1-day", 86_400_000),
        ("2-days", 172_800_000),
    ],
)
def test_parse_interval(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text",
    ["0-seconds", "-5-seconds", "5", "5-weeks", "five-seconds", "5-", "", "1.5-seconds", "5-ms"],
)
def test_parse_interval_refuses(text: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_duration(text)
    assert FORMS in caught.value.message
    assert caught.value.code == "bad-interval"


def test_delay_may_be_zero_and_missed_ticks_coalesce() -> None:
    assert parse_duration("0-seconds", name="delay", allow_zero=True) == 0
    with pytest.raises(BadParameter):
        parse_duration("-1-seconds", name="delay", allow_zero=True)
    assert next_due(1000, 1000, 100) == 1100
    assert next_due(1000, 1099, 100) == 1100
    assert next_due(1000, 1100, 100) == 1200
    assert next_due(1000, 1000 + 10 * 100 + 50, 100) == 1000 + 11 * 100  # one, not eleven


# -- firing ----------------------------------------------------------------


async def test_every_fires_until_stopped(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    runs = Runs(ln.node.cron)
    pid = await spawn_lua(ln, user_wallet)
    await send(ln, user_wallet, pid, "return 'ok'")
    path = f"/{pid}~process@1.0/now"
    task = await start(ln, "every", {"cron-path": path, "interval": "100-milliseconds"})
    await runs.until(lambda: runs.count(task) >= 3)
    assert all(s.status == 200 for t, s in runs.seen if t == task)
    listed = (await tasks(ln))[task]
    assert listed["type"] == "every" and listed["cron-path"] == path
    assert listed["interval"] == "100-milliseconds" and listed["interval-ms"] == 100
    assert isinstance(listed["next-run"], int) and listed["runs"] >= 3
    assert listed["last-run"]["status"] == 200
    await stop(ln, task)
    assert task not in await tasks(ln)
    await runs.until(lambda: not ln.node.cron.running(task))  # a run in flight may end
    fired = runs.count(task)
    await runs.metronome_ticks(ln)
    assert runs.count(task) == fired
    r = await ln.client.post("/~cron@1.0/stop", params={"task": task}, headers=OP)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown-task"


async def test_once_fires_once_with_a_node_signed_message(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    runs = Runs(ln.node.cron)
    pid = await spawn_lua(ln, user_wallet)
    await send(ln, user_wallet, pid, TICK_HANDLER)
    before = await current_slot(ln, pid)
    item = ans104.sign(  # the process's owner asks: it owns the task
        user_wallet,
        data=b"hello",
        tags=[("cron-path", f"/{pid}~process@1.0/schedule"), ("Action", "Tick")],
        anchor=os.urandom(32),
    )
    r = await ln.client.post("/~cron@1.0/once", content=item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    assert r.json()["owner"] == user_wallet.address
    await runs.until(lambda: runs.count(task) == 1)
    assert runs.seen[-1][1].status == 200
    assert await current_slot(ln, pid) == before + 1
    page = (await ln.client.get(f"/{pid}/schedule", params={"from": before + 1})).json()
    item = page["assignments"][0]["body"]
    tags = {t["name"]: t["value"] for t in item["tags"]}
    assert tags["Action"] == "Tick" and tags["Type"] == "Message" and tags["Data-Protocol"] == "ao"
    assert "cron-path" not in {n.lower() for n in tags}
    assert tags["Cron-Task"] == task and tags["Cron-Owner"] == user_wallet.address
    assert "From-Process" not in tags
    assert jsonform.from_json(item).owner_address == ln.node.address
    last = await send(ln, user_wallet, pid, "return Ticks .. ' ' .. LastData")
    got = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert got.json()["results"]["data"] == "1 hello"
    await runs.metronome_ticks(ln)
    assert runs.count(task) == 1
    assert await current_slot(ln, pid) == last
    listed = (await tasks(ln))[task]
    assert listed["type"] == "once" and listed["next-run"] is None and listed["runs"] == 1


async def test_parameters_in_a_signed_body(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    runs = Runs(ln.node.cron)
    pid = await spawn_lua(ln, user_wallet)
    item = ans104.sign(
        user_wallet,
        data=b"payload",
        tags=[
            ("cron-path", "/~scheduler@1.0/schedule"),
            ("delay", "0-seconds"),
            ("Action", "Tick"),
        ],
        target=b64url_decode(pid),
        anchor=os.urandom(32),
    )
    r = await ln.client.post("/~cron@1.0/once", content=item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    await runs.until(lambda: runs.count(task) == 1)
    assert runs.seen[-1][1].status == 200, runs.seen[-1]
    page = (await ln.client.get(f"/{pid}/schedule", params={"from": 1})).json()
    tags = {t["name"]: t["value"] for t in page["assignments"][0]["body"]["tags"]}
    assert tags["Action"] == "Tick"


async def test_a_failing_run_does_not_stop_the_task(live: Live) -> None:
    ln = await live()
    runs = Runs(ln.node.cron)
    nobody = b64url_encode(os.urandom(32))
    task = await start(ln, "every", {"cron-path": f"/{nobody}/now", "interval": "100-milliseconds"})
    await runs.until(lambda: runs.count(task) >= 2)
    assert {s.status for t, s in runs.seen if t == task} == {404}
    listed = (await tasks(ln))[task]
    assert listed["last-run"]["status"] == 404 and "unknown-process" in listed["last-run"]["error"]
    await stop(ln, task)


async def test_a_long_run_skips_ticks_instead_of_overlapping(
    tmp_path: Path, ed_wallet: Wallet
) -> None:
    """Through the dispatch seam: ``/slow`` answers only when released."""
    store = SQLiteStore(tmp_path / "cron.sqlite3")
    await store.open()
    cron = Cron(store, ed_wallet, CronPolicy(min_interval_ms=1))
    op = Caller(operator=True)
    release = asyncio.Event()
    calls: list[str] = []

    async def dispatch(
        method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes]:
        calls.append(target)
        if target == "/slow":
            await release.wait()
        return 200, b"{}"

    async def until(predicate: Callable[[], bool]) -> None:
        await asyncio.wait_for(cron.wait_for(predicate), WAIT)

    await cron.start(dispatch)
    try:
        every = [("interval", "100-milliseconds")]
        slow = await cron.add("every", [("cron-path", "/slow"), *every], op)
        later = await cron.add("once", [("cron-path", "/later"), ("delay", "1-day")], op)
        await cron.add("every", [("cron-path", "/fast"), *every], op)
        await until(lambda: calls.count("/fast") >= 3)  # /slow's second tick came meanwhile
        assert calls.count("/slow") == 1 and cron.running(slow.id)
        assert (cron.get(slow.id) or slow).runs == 1  # a skipped tick is no run
        assert "/later" not in calls and later.next_run == later.created + 86_400_000
        release.set()
        await until(lambda: calls.count("/slow") >= 2)
    finally:
        release.set()
        await cron.stop()
        await store.close()


# -- durability ------------------------------------------------------------


async def test_tasks_survive_a_restart(live: Live, user_wallet: Wallet, tmp_path: Path) -> None:
    ln = await live()
    runs = Runs(ln.node.cron)
    pid = await spawn_lua(ln, user_wallet)
    await send(ln, user_wallet, pid, TICK_HANDLER)
    every = await start(ln, "every", {"cron-path": f"/{pid}/now", "interval": "100-milliseconds"})
    once = await start(ln, "once", {"cron-path": f"/{pid}/schedule", "Action": "Tick"})
    await runs.until(lambda: runs.count(once) == 1 and runs.count(every) >= 1)
    slot = await current_slot(ln, pid)
    await ln.close()
    store = SQLiteStore(tmp_path / "aonode.sqlite3")
    await store.open()
    assert await store.get_record("cron", once) is None
    record = await store.get_record("cron", every)
    await store.close()
    assert record is not None
    stored_runs = CronTask.from_bytes(record.value).runs

    again = await live()
    cron = again.node.cron
    runs2 = Runs(cron)
    listed = await tasks(again)
    assert every in listed and once not in listed
    await runs2.until(lambda: runs_of(cron, every) >= stored_runs + 2)  # resumed: fires again
    assert runs2.count(once) == 0
    assert await current_slot(again, pid) == slot  # the once-task did not fire again
    await stop(again, every)


async def test_missed_ticks_fire_once_on_resume(live: Live, tmp_path: Path) -> None:
    ln = await live()
    runs = Runs(ln.node.cron)
    task = await start(ln, "every", {"cron-path": "/~meta@1.0/info", "interval": "1-hour"})
    await runs.until(lambda: runs.count(task) == 1)  # the first run is immediate
    await ln.close()
    # ten ticks pass while the node is down
    store = SQLiteStore(tmp_path / "aonode.sqlite3")
    await store.open()
    record = await store.get_record("cron", task)
    assert record is not None
    stored = CronTask.from_bytes(record.value)
    assert stored.runs == 1
    hour = 3_600_000
    due = now_ms() - 10 * hour
    moved = CronTask(**{**_fields(stored), "next_run": due})
    await store.put_record(Record("cron", task, moved.to_bytes()))
    await store.close()

    again = await live()
    cron = again.node.cron
    runs2 = Runs(cron)  # the resumed run may end before this observer exists: count stored runs

    def resumed() -> bool:
        return runs_of(cron, task) >= 2 and not cron.running(task)

    await runs2.until(resumed)
    fired = runs2.count(task)
    await runs2.metronome_ticks(again)
    assert runs2.count(task) == fired  # once, not ten times
    listed = (await tasks(again))[task]
    assert listed["runs"] == 2 and listed["last-run"]["status"] == 200
    assert listed["next-run"] == due + 11 * hour  # the original phase, after now


async def _poll_task(client: httpx.AsyncClient, task: str, done: Callable[[Any], bool]) -> Any:
    """Read ``/tasks`` until ``done(task entry)``: a bounded poll, paced, not timed."""
    for _ in range(3000):
        listed = {t["task"]: t for t in (await client.get("/~cron@1.0/tasks")).json()}
        if task in listed and done(listed[task]):
            return listed[task]
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task} never reached the awaited state")


async def test_a_real_node_resumes_its_task_after_sigterm(tmp_path: Path) -> None:
    """``aonode serve`` with a task running exits cleanly, and the next one resumes it."""
    data = tmp_path / "node"
    proc, url, _ = await start_node(data, free_port("127.0.0.1"), env=CRON_ENV)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            params = {"cron-path": "/~meta@1.0/info", "interval": "100-milliseconds"}
            r = await client.post("/~cron@1.0/every", params=params, headers=OP)
            assert r.status_code == 200, r.text
            task = r.json()["task"]
            await _poll_task(client, task, lambda t: t["runs"] >= 2)
    finally:
        await stop_node(proc)  # exit status 0 with the task in flight
    proc, url, _ = await start_node(data, free_port("127.0.0.1"), env=CRON_ENV)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            stored = await _poll_task(client, task, lambda t: True)
            entry = await _poll_task(client, task, lambda t: t["runs"] >= stored["runs"] + 2)
            assert entry["last-run"]["status"] == 200
            r = await client.post("/~cron@1.0/stop", params={"task": task}, headers=OP)
            assert r.status_code == 200, r.text
    finally:
        await stop_node(proc)


def _fields(task: CronTask) -> dict[str, Any]:
    return {name: getattr(task, name) for name in CronTask.__dataclass_fields__}


# -- bad input -------------------------------------------------------------


async def test_bad_requests(live: Live) -> None:
    ln = await live()
    c = httpx.AsyncClient(base_url=ln.url, headers=OP, timeout=30)
    unknown = b64url_encode(os.urandom(32))
    r = await c.post("/~cron@1.0/stop", params={"task": unknown})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown-task"
    r = await c.post("/~cron@1.0/stop")
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing-task"
    for interval in ("5-weeks", "0-seconds", "-1-seconds", "soon"):
        r = await c.post(
            "/~cron@1.0/every", params={"cron-path": "/~meta@1.0/info", "interval": interval}
        )
        assert r.status_code == 400, interval
        assert r.json()["error"]["code"] == "bad-interval" and FORMS in r.json()["error"]["message"]
    r = await c.post("/~cron@1.0/every", params={"cron-path": "/~meta@1.0/info"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad-interval"
    for kind in ("once", "every"):
        r = await c.post(f"/~cron@1.0/{kind}", params={"interval": "1-second"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "missing-cron-path"
    r = await c.post("/~cron@1.0/once", params={"cron-path": "/~cron@1.0/once"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad-cron-path"
    r = await c.post("/~cron@1.0/once", params={"cron-path": "/x", "delay": "later"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad-delay"
    r = await c.post("/~cron@1.0/once", params={"cron-path": "/x", "target": "nope", "a": "b"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad-target"
    r = await c.post("/~cron@1.0/once", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-json"
    r = await c.post("/~cron@1.0/once", json={"cron-path": "/x", "nested": {"a": 1}})
    assert r.status_code == 400
    for method, path, allow in (
        ("GET", "/~cron@1.0/once", "POST"),
        ("GET", "/~cron@1.0/every", "POST"),
        ("GET", "/~cron@1.0/stop", "POST"),
        ("POST", "/~cron@1.0/tasks", "GET"),
    ):
        r = await c.request(method, path)
        assert r.status_code == 405 and r.headers["allow"] == allow, (method, path)
    r = await c.get("/~cron@1.0/nothing")
    assert r.status_code == 404
    assert await tasks(ln) == {}  # nothing bad was kept
    assert await ln.node.store.records("cron") == []
    await c.aclose()
