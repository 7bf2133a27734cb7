"""The legacy ao network's own clients against a live node.

``@permaweb/aoconnect`` in legacy mode (``MU_URL`` = ``CU_URL`` = the node)
spawns, messages, assigns, reads results and dry-runs; ``@permaweb/ao-scheduler-utils``
finds the node through its ``Scheduler-Location`` on the gateway (arlocal, a
real local Arweave node, which also holds the Lua module aoconnect checks at
spawn); and aoconnect's legacy schedule readers (``getMessages``,
``getMessageById``, ``getLastSlot``, ``returnAssignmentSlot``) read the pages
back.  The test then checks the same slots through the HyperBEAM-style surface.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.wallet import Wallet
from tests.arlocal_fixtures import Arlocal, arlocal, arlocal_factory  # noqa: F401  (fixtures)
from tests.conftest import LiveNode
from tests.http.test_legacy import legacy_chains
from tests.interop.conftest import RunNode
from tests.process.conftest import extract_hyper_aos

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}


def _tags(doc: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value"] for t in doc["tags"]}


def _failed(out: dict[str, Any]) -> list[Any]:
    failed = [s for s in out["steps"] if not s["ok"]]
    exchanges = [
        (h["method"], h["url"], h.get("status"), h.get("response", "")[:200]) for h in out["http"]
    ]
    return [*failed, *exchanges] if failed else []


async def test_aoconnect_legacy_mode_and_scheduler_utils(
    live: Live,
    run_node: RunNode,
    rsa_wallet: Wallet,
    arlocal: Arlocal,  # noqa: F811
    tmp_path: Path,
) -> None:
    node_wallet = wallet_mod.generate("rsa")  # an Arweave wallet: it signs on arlocal too
    ln = await live(wallets=[node_wallet], gateway=arlocal.url)
    node_jwk, client_jwk, module = (
        tmp_path / "node.json",
        tmp_path / "client.json",
        tmp_path / "module.lua",
    )
    wallet_mod.save(node_wallet, node_jwk)
    wallet_mod.save(rsa_wallet, client_jwk)
    module.write_bytes(extract_hyper_aos())
    # a message this node stores but has not scheduled, for aoconnect's assign
    stored = ans104.sign(
        rsa_wallet,
        data=b"assigned",
        tags=[("Data-Protocol", "ao"), ("Type", "Message")],
        anchor=os.urandom(32),
    )
    r = await ln.client.post("/~message@1.0/store", content=stored.raw, headers=ANS)
    assert r.status_code == 200, r.text
    eval_tag = [{"name": "Action", "value": "Eval"}]
    config = {
        "node_url": ln.url,
        "arlocal_url": arlocal.url,
        "node_jwk_path": str(node_jwk),
        "client_jwk_path": str(client_jwk),
        "module_path": str(module),
        "tags": [
            {"name": "Execution-Device", "value": "lua@5.3a"},
            {"name": "Authority", "value": rsa_wallet.address},  # hyper-aos trusts it
        ],
        "messages": [{"tags": eval_tag, "data": c} for c in ("X = 20", "return X + 1")],
        "dryrun": {"tags": eval_tag, "data": "return X * 2", "owner": rsa_wallet.address},
        "assign": stored.id,
    }
    out = await asyncio.to_thread(run_node, "legacy_flow.js", config, timeout=240)
    assert not _failed(out), _failed(out)
    steps: dict[str, list[Any]] = {}
    for s in out["steps"]:
        steps.setdefault(s["call"], []).append(s["value"])
    pid, ids = out["process"], out["ids"]

    # spawn and message went to the node as the MU: raw ANS-104 on POST /
    posts = [h for h in out["http"] if h["method"] == "POST" and h["url"] == ln.url]
    assert len(posts) == 4  # spawn, two messages, the message asking for its slot
    assert all(h["headers"]["Content-Type"] == "application/octet-stream" for h in posts)
    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    assert [a["message"] for a in native] == [pid, *ids, stored.id, native[4]["message"]]

    # result and dryrun, computed by the node as the CU
    first, second = steps["result"]
    assert first["Error"] is None and second["Output"]["data"] == "21"
    assert steps["dryrun"][0]["Output"]["data"] == "40"

    # assign: the stored message took the next slot; its assignment id came back
    assert steps["assign"][0] == native[3]["id"]

    # ao-scheduler-utils found the node through the gateway
    node_url = ln.url.rstrip("/")
    assert steps["validate"] == [True]
    assert steps["raw"] == [{"url": node_url}]
    assert steps["locate"][0] == {"url": node_url, "address": ln.node.address}
    assert steps["locate-redirects"][0]["url"] == node_url

    # aoconnect's legacy readers: the same slots, hash chains and timestamps
    page = steps["getMessages"][0]
    edges = page["edges"]
    assert page["page_info"]["has_next_page"] is False
    # from=0 is a later page: it does not open with the process (as the legacy SU)
    assert [e["node"]["message"]["id"] for e in edges] == [a["message"] for a in native[1:4]]
    legacy = legacy_chains(pid, native)  # the legacy SU's chain rule, as a legacy CU checks it
    for edge, a, chain in zip(edges, native[1:4], legacy[1:4], strict=True):
        t = _tags(edge["node"]["assignment"])
        assert (int(t["Nonce"]), t["Hash-Chain"], int(t["Timestamp"])) == (
            a["slot"],
            chain,
            a["timestamp"],
        )
        assert edge["cursor"] == t["Timestamp"]
    by_id = steps["getMessageById"][0]
    assert by_id["message"]["id"] == ids[0] and _tags(by_id["assignment"])["Nonce"] == "1"
    assert steps["getLastSlot"][0] == "3"
    assert steps["message-slot"][0] == "4"
