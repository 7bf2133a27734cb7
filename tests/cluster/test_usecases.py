"""Compute, push and cron across 2 real workers: each runs where its process lives."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import orjson
import pytest

from aonode.cluster.channel import Link
from aonode.cluster.worker import socket_path
from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.message import Message
from aonode.wallet import Wallet
from tests.cluster.conftest import Cluster, run_cluster
from tests.cluster.test_routing import one_process_per_shard, post
from tests.conftest import sign_message
from tests.process.test_device_http import LUA

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}
TOKEN = "operator-secret"


async def info(cluster: Cluster, index: int) -> dict[str, Any]:
    assert cluster.supervisor.sock_dir is not None
    link = Link(socket_path(cluster.supervisor.sock_dir, index))
    try:
        got: dict[str, Any] = orjson.loads(await link.call("info"))
    finally:
        await link.close()
    return got


async def get(url: str, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:  # fresh: any worker answers
        return await client.get(f"{url}{path}", params=params)


async def spawn_pair(cluster: Cluster, user_wallet: Wallet) -> list[Message]:
    procs = one_process_per_shard(user_wallet, cluster.supervisor.address, extra=LUA)
    for proc in procs:
        r = await post(cluster.url, "/~scheduler@1.0/schedule", proc)
        assert r.status_code == 200, r.text
    return procs


async def test_compute_now_dryrun_and_snapshot_run_on_the_owner_only(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url = cluster.url
    procs = await spawn_pair(cluster, user_wallet)
    for proc in procs:
        m = sign_message(user_wallet, proc.id, data=b"return 20 + 22", action="Eval")
        assert (await post(url, f"/{proc.id}/schedule", m)).json()["slot"] == 1
    for proc in procs:
        for _ in range(6):  # fresh connections: both workers answer for both processes
            got = (await get(url, f"/{proc.id}/compute", slot=1)).json()
            assert got["results"]["data"] == "42", got
            now = (await get(url, f"/{proc.id}/now")).json()
            assert now["slot"] == 1 and now["results"]["data"] == "42"
            snap = await get(url, f"/{proc.id}/snapshot")
            assert snap.status_code == 200 and snap.json()["slot"] >= 0
            async with httpx.AsyncClient(timeout=60) as client:
                dry = await client.post(
                    f"{url}/{proc.id}/compute",
                    json={"Tags": [{"name": "Action", "value": "Ping"}], "Data": "x"},
                )
            assert dry.status_code == 200, dry.text
            assert dry.json()["slot"] == 1 and "Action = Ping" in dry.json()["results"]["output"]
        missing = await get(url, f"/{proc.id}/compute", slot=5)  # errors cross unchanged
        assert missing.status_code == 404, missing.text
    # one runtime per process in the whole cluster: on its owner
    assert (await info(cluster, 0))["computing"] == [procs[0].id]
    assert (await info(cluster, 1))["computing"] == [procs[1].id]


async def test_a_push_walk_reaches_a_process_owned_by_the_other_worker(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url = cluster.url
    procs = await spawn_pair(cluster, user_wallet)
    for sender, receiver in (procs, procs[::-1]):
        code = f'Send({{Target = "{receiver.id}", Action = "Hello", Data = "hi"}})'
        m = sign_message(user_wallet, sender.id, data=code.encode(), action="Eval")
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(
                f"{url}/{sender.id}~process@1.0/push", content=m.item.raw, headers=ANS
            )
        assert r.status_code == 200, r.text
        page = (await get(url, f"/{receiver.id}/schedule")).json()
        tags = [{t["name"]: t["value"] for t in a["body"]["tags"]} for a in page["assignments"]]
        assert [t.get("Action") for t in tags].count("Hello") == 1, tags
    assert (await info(cluster, 0))["actors"] == [procs[0].id]
    assert (await info(cluster, 1))["actors"] == [procs[1].id]


async def test_cron_runs_on_worker_0_only_and_fires_once(
    tmp_path: Any, user_wallet: Wallet
) -> None:
    config = NodeConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data", operator_token=TOKEN)
    async with run_cluster(config) as cluster:
        url, sup = cluster.url, cluster.supervisor
        procs = await spawn_pair(cluster, user_wallet)
        target = procs[1]  # owned by worker 1: worker 0's firing is forwarded there
        item = ans104.sign(
            user_wallet,
            data=b"tick",
            tags=[("cron-path", f"/{target.id}~process@1.0/schedule"), ("Action", "Tick")],
            anchor=os.urandom(32),
        )
        r = await post(url, "/~cron@1.0/once", Message.from_item(item))
        assert r.status_code == 200, r.text
        once = r.json()["task"]
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(
                f"{url}/~cron@1.0/every",
                params={"cron-path": "/~meta@1.0/info", "interval": "1-hour"},
                headers={"authorization": f"Bearer {TOKEN}"},
            )
        assert r.status_code == 200, r.text
        hourly = r.json()["task"]
        # a restarted worker 1 loads no task: only worker 0's timer holds them
        mark = len(cluster.events.seen)
        pid1 = sup.pids[1]
        assert pid1 is not None
        os.kill(pid1, signal.SIGKILL)
        await cluster.events.next("ready", 1, mark)
        assert (await info(cluster, 1))["timers"] == 0
        assert (await info(cluster, 0))["timers"] == 2
        for _ in range(6):  # every worker lists worker 0's tasks
            listed = {t["task"]: t for t in (await get(url, "/~cron@1.0/tasks")).json()}
            assert set(listed) == {once, hourly}
        for _ in range(1200):  # polling another OS process: no event to wait on
            if (await get(url, f"/{target.id}~process@1.0/slot")).json()["current"] >= 1:
                break
            await asyncio.sleep(0.05)
        page = (await get(url, f"/{target.id}/schedule")).json()
        tags = {t["name"]: t["value"] for t in page["assignments"][1]["body"]["tags"]}
        assert tags["Action"] == "Tick" and tags["Cron-Task"] == once
        async with httpx.AsyncClient(timeout=60) as client:  # stop, from any worker
            r = await client.post(
                f"{url}/~cron@1.0/stop",
                params={"task": hourly},
                headers={"authorization": f"Bearer {TOKEN}"},
            )
        assert r.status_code == 200 and r.json()["stopped"] is True, r.text
        assert hourly not in {t["task"] for t in (await get(url, "/~cron@1.0/tasks")).json()}
