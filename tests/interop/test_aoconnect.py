"""The real ``@permaweb/aoconnect`` in mainnet mode against a live node.

aoconnect's ``spawn`` always sends a ``Module`` (it refuses to spawn without
one) and ``execution-device: genesis-wasm@1.0``; a user tag with the exact key
``execution-device`` replaces that default. The module here is hyper-aos, stored
on the node first, as a HyperBEAM user would name it by its Arweave id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.interop.conftest import RunNode
from tests.process.conftest import extract_hyper_aos

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}
LUA_TAG = [{"name": "execution-device", "value": "lua@5.3a"}]
EVAL = [{"name": "Action", "value": "Eval"}]


async def _aoconnect(
    live: Live, run_node: RunNode, client: Wallet, tmp_path: Path, steps: list[dict[str, Any]]
) -> tuple[LiveNode, dict[str, Any]]:
    """Store hyper-aos on a new node, then run aoconnect_flow.js: spawn, then ``steps``."""
    ln = await live()
    module = ans104.sign(
        client,
        data=extract_hyper_aos(),
        tags=[("Content-Type", "application/lua"), ("Type", "Module")],
    )
    r = await ln.client.post("/~message@1.0/store", content=module.raw, headers=ANS)
    assert r.status_code == 200, r.text
    jwk_path = tmp_path / "aoconnect-client.json"
    wallet_mod.save(client, jwk_path)
    config = {
        "url": ln.url,
        "jwk_path": str(jwk_path),
        "steps": [{"call": "spawn", "module": module.id, "tags": LUA_TAG}, *steps],
    }
    # the node answers in this event loop: run the client off it
    out = await asyncio.to_thread(run_node, "aoconnect_flow.js", config)
    return ln, out


def _tags(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["name"], t["value"]) for t in request["body"]["ans104"]["tags"]]


def _failed(out: dict[str, Any]) -> list[Any]:
    """Each failed call with the HTTP exchanges, for an assertion message."""
    failed = [s for s in out["steps"] if not s["ok"]]
    exchanges = [
        (h["method"], h["url"], h.get("status"), h.get("response", "")[:300]) for h in out["http"]
    ]
    return [*failed, *exchanges] if failed else []


async def test_aoconnect_spawn_message_result_dryrun(
    live: Live, run_node: RunNode, rsa_wallet: Wallet, tmp_path: Path
) -> None:
    steps: list[dict[str, Any]] = []
    for code in ("X = 10", "X = X * 2", "return X"):
        steps += [{"call": "message", "tags": EVAL, "data": code}, {"call": "result"}]
    steps.append({"call": "dryrun", "tags": EVAL, "data": "return X"})
    ln, out = await _aoconnect(live, run_node, rsa_wallet, tmp_path, steps)
    assert not _failed(out), _failed(out)
    spawn, *calls = out["steps"]
    messages, results, dry = calls[0:6:2], calls[1:6:2], calls[6]

    # spawn: the id aoconnect returns is the process the node schedules
    pid = spawn["value"]
    assert out["process"] == pid
    status = (await ln.client.get("/~scheduler@1.0/status")).json()
    assert pid in status["processes"]
    spawn_req = next(h for h in out["http"] if h["url"] == f"{ln.url}/push")
    assert spawn_req["method"] == "POST"
    assert spawn_req["headers"]["Content-Type"] == "application/ans104"
    assert spawn_req["headers"]["codec-device"] == "ans104@1.0"
    assert spawn_req["response_headers"]["process"] == pid
    devices = [v for n, v in _tags(spawn_req) if n.lower() == "execution-device"]
    assert devices == ["lua@5.3a"]  # the user tag replaced aoconnect's genesis-wasm@1.0

    # message: slots 1, 2, 3 and the ids the node assigned
    assert [m["value"]["slot"] for m in messages] == [1, 2, 3]
    r = await ln.client.get(f"/{pid}~process@1.0/schedule", params={"from": 1, "to": 3})
    assert [a["message"] for a in r.json()["assignments"]] == [m["value"]["id"] for m in messages]

    # result, as aoconnect normalises it
    for res in results:
        assert res["value"]["Error"] is None
        assert res["value"]["Messages"] == [] and res["value"]["Spawns"] == []
    last = results[-1]["value"]
    assert last["Data"] == "20"
    assert last["Output"]["data"] == "20"

    # dryrun: the same answer, and nothing scheduled
    assert dry["value"]["Data"] == "20"
    assert dry["value"]["Output"]["data"] == "20"
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 3


async def test_aoconnect_results_reads_the_current_slot(
    live: Live, run_node: RunNode, rsa_wallet: Wallet, tmp_path: Path
) -> None:
    # results POSTs a signed item to /{pid}/slot/current, then /{pid}/compute/results=N
    steps: list[dict[str, Any]] = [
        {"call": "message", "tags": EVAL, "data": "X = 21"},
        {"call": "message", "tags": EVAL, "data": "return X * 2"},
        {"call": "results"},
    ]
    ln, out = await _aoconnect(live, run_node, rsa_wallet, tmp_path, steps)
    assert not _failed(out), _failed(out)
    edges = out["steps"][-1]["value"]["edges"]
    assert [e["cursor"] for e in edges] == ["2"]
    assert edges[0]["node"]["Data"] == "42"
    assert edges[0]["node"]["Output"]["data"] == "42"
    assert (await ln.client.get(f"/{out['process']}/slot")).json()["current"] == 2
