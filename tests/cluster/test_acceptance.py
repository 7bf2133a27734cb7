"""Acceptance against ``aonode serve --workers 2``: the real npm clients' flows.

The node is a real subprocess (a supervisor and two worker processes on one
port).  ``@permaweb/aoconnect`` in mainnet mode spawns, messages, reads results
and dry-runs (tests/interop/aoconnect_flow.js, unchanged, several spawns a run)
until one run's processes are owned by both workers: whichever worker that
client's connections land on, its calls for the other worker's processes take
the forwarded path.  The
legacy flow (tests/interop/legacy_flow.js, unchanged: aoconnect in legacy mode,
ao-scheduler-utils and arlocal as the gateway) runs against a 2-worker node too.
Every schedule is then read back over fresh connections (any worker answers).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.cluster.shard import shard_of
from aonode.codec import ans104
from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.arlocal_fixtures import Arlocal, arlocal, arlocal_factory  # noqa: F401  (fixtures)
from tests.interop.conftest import RunNode, run_node  # noqa: F401  (fixture)
from tests.process.conftest import extract_hyper_aos
from tests.test_crash import start_node, stop_node

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}
LUA_TAG = [{"name": "execution-device", "value": "lua@5.3a"}]
EVAL = [{"name": "Action", "value": "Eval"}]
# one spawn and what follows it; a run of aoconnect_flow.js repeats it CYCLES times
CYCLE: list[dict[str, Any]] = [
    {"call": "message", "tags": EVAL, "data": "X = 10"},
    {"call": "result"},
    {"call": "message", "tags": EVAL, "data": "X = X * 2"},
    {"call": "result"},
    {"call": "message", "tags": EVAL, "data": "return X"},
    {"call": "result"},
    {"call": "dryrun", "tags": EVAL, "data": "return X"},
    {"call": "results"},
]
CYCLES = 3
RUNS = 8  # a run's spawns are all on one worker with probability 2⁻²; all eight: 2⁻¹⁶


def _failed(out: dict[str, Any]) -> list[Any]:
    failed = [s for s in out["steps"] if not s["ok"]]
    exchanges = [
        (h["method"], h["url"], h.get("status"), h.get("response", "")[:300]) for h in out["http"]
    ]
    return [*failed, *exchanges] if failed else []


async def _fresh_get(url: str, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:  # a new connection: any worker
        return await client.get(f"{url}{path}", params=params)


async def _schedule_ids(url: str, pid: str) -> list[str]:
    r = await _fresh_get(url, f"/{pid}/schedule")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [a["slot"] for a in page["assignments"]] == list(range(len(page["assignments"])))
    return [a["message"] for a in page["assignments"]]


def _check_cycle(spawn: dict[str, Any], calls: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The values aoconnect returned for one cycle; the process and its message ids."""
    assert spawn["call"] == "spawn"
    pid = spawn["value"]
    messages, results = calls[0:6:2], calls[1:6:2]
    dry, many = calls[6], calls[7]
    assert [m["value"]["slot"] for m in messages] == [1, 2, 3]
    for res in results:
        assert res["value"]["Error"] is None
        assert res["value"]["Messages"] == [] and res["value"]["Spawns"] == []
    assert results[-1]["value"]["Data"] == "20"
    assert dry["value"]["Data"] == "20" and dry["value"]["Output"]["data"] == "20"
    edges = many["value"]["edges"]
    assert [e["cursor"] for e in edges] == ["3"]
    assert edges[0]["node"]["Data"] == "20"
    return pid, [m["value"]["id"] for m in messages]


async def test_aoconnect_flow_on_processes_of_both_workers(
    run_node: RunNode,  # noqa: F811
    rsa_wallet: Wallet,
    tmp_path: Path,
) -> None:
    node, url, _ = await start_node(tmp_path / "node", free_port("127.0.0.1"), workers=2)
    try:
        module = ans104.sign(
            rsa_wallet,
            data=extract_hyper_aos(),
            tags=[("Content-Type", "application/lua"), ("Type", "Module")],
        )
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(f"{url}/~message@1.0/store", content=module.raw, headers=ANS)
        assert r.status_code == 200, r.text
        jwk_path = tmp_path / "aoconnect-client.json"
        wallet_mod.save(rsa_wallet, jwk_path)
        spawn = {"call": "spawn", "module": module.id, "tags": LUA_TAG}
        config = {"url": url, "jwk_path": str(jwk_path), "steps": [spawn, *CYCLE] * CYCLES}
        driven: list[tuple[str, list[str]]] = []
        for _ in range(RUNS):
            # the node is another process: the client may block this loop
            out = await asyncio.to_thread(run_node, "aoconnect_flow.js", config)
            assert not _failed(out), _failed(out)
            size = 1 + len(CYCLE)
            run = []
            for k in range(CYCLES):
                first, *calls = out["steps"][k * size : (k + 1) * size]
                run.append(_check_cycle(first, calls))
            driven += run
            if {shard_of(pid, 2) for pid, _ in run} == {0, 1}:
                break  # one client drove processes of both workers
        else:
            raise AssertionError(f"no run spawned processes on both workers: {driven}")

        # every schedule read back over fresh connections, wherever they land
        for pid, ids in driven:
            for _ in range(2):
                assert await _schedule_ids(url, pid) == [pid, *ids]
                r = await _fresh_get(url, f"/{pid}/slot")
                assert r.json()["current"] == 3
                r = await _fresh_get(url, f"/{pid}/now/results/data")
                assert r.status_code == 200 and r.text == "20", r.text
    finally:
        await stop_node(node)


async def test_legacy_flow_on_a_two_worker_node(
    run_node: RunNode,  # noqa: F811
    rsa_wallet: Wallet,
    arlocal: Arlocal,  # noqa: F811
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    node_wallet = wallet_mod.generate("rsa")  # an Arweave wallet: it signs on arlocal too
    wallet_mod.save(node_wallet, data_dir / "wallet.json")  # the node's scheduler identity
    node, url, address = await start_node(
        data_dir, free_port("127.0.0.1"), env={"AONODE_GATEWAY": arlocal.url}, workers=2
    )
    try:
        assert address == node_wallet.address
        client_jwk, module = tmp_path / "client.json", tmp_path / "module.lua"
        wallet_mod.save(rsa_wallet, client_jwk)
        module.write_bytes(extract_hyper_aos())
        stored = ans104.sign(
            rsa_wallet,
            data=b"assigned",
            tags=[("Data-Protocol", "ao"), ("Type", "Message")],
            anchor=os.urandom(32),
        )
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(f"{url}/~message@1.0/store", content=stored.raw, headers=ANS)
        assert r.status_code == 200, r.text
        config = {
            "node_url": url,
            "arlocal_url": arlocal.url,
            "node_jwk_path": str(data_dir / "wallet.json"),
            "client_jwk_path": str(client_jwk),
            "module_path": str(module),
            "tags": [
                {"name": "Execution-Device", "value": "lua@5.3a"},
                {"name": "Authority", "value": rsa_wallet.address},
            ],
            "messages": [{"tags": EVAL, "data": c} for c in ("X = 20", "return X + 1")],
            "dryrun": {"tags": EVAL, "data": "return X * 2", "owner": rsa_wallet.address},
            "assign": stored.id,
        }
        out = await asyncio.to_thread(run_node, "legacy_flow.js", config, timeout=240)
        assert not _failed(out), _failed(out)
        steps: dict[str, list[Any]] = {}
        for s in out["steps"]:
            steps.setdefault(s["call"], []).append(s["value"])
        pid, ids = out["process"], out["ids"]

        native = await _schedule_ids(url, pid)
        assert native[:4] == [pid, *ids, stored.id] and len(native) == 5
        first, second = steps["result"]
        assert first["Error"] is None and second["Output"]["data"] == "21"
        assert steps["dryrun"][0]["Output"]["data"] == "40"
        assert steps["locate"][0] == {"url": url.rstrip("/"), "address": address}
        edges = steps["getMessages"][0]["edges"]
        assert [e["node"]["message"]["id"] for e in edges] == native[1:4]
        assert steps["getLastSlot"][0] == "3"
        assert steps["message-slot"][0] == "4"
    finally:
        await stop_node(node)
