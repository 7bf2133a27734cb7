"""aoconnect's legacy mode and ao-scheduler-utils against ONE node, with no gateway.

The node is aoconnect's MU, CU and SU and also its gateway: aoconnect's
``spawn`` checks the module and the scheduler through the node's ``POST
/graphql``, and ao-scheduler-utils finds the node's ``Scheduler-Location``
there.  The script run is the README's legacy-mode recipe, verbatim (the test
checks the README shows this very file).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_process
from tests.interop.conftest import INTEROP_DIR, SETUP_HINT, RunNode
from tests.process.conftest import extract_hyper_aos

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}
README = INTEROP_DIR.parent.parent / "README.md"
# what aoconnect's legacy spawn checks on a module (its verifyModule)
MODULE_TAGS = [
    ("Data-Protocol", "ao"),
    ("Type", "Module"),
    ("Module-Format", "lua"),
    ("Input-Encoding", "JSON-1"),
    ("Output-Encoding", "JSON-1"),
    ("Content-Type", "application/lua"),
]


def run_recipe(script: str, env: dict[str, str]) -> Any:
    """``node script`` with ``env`` added (as a user runs the recipe); its stdout as JSON."""
    node = shutil.which("node")
    if node is None or not (INTEROP_DIR / "node_modules").is_dir():
        pytest.fail(f"node or tests/interop/node_modules is missing: {SETUP_HINT}")
    clean = {k: v for k, v in os.environ.items() if k not in ("MU_URL", "CU_URL", "GRAPHQL_URL")}
    proc = subprocess.run(
        [node, script],
        cwd=INTEROP_DIR,
        env={**clean, **env},
        capture_output=True,
        timeout=180,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"node {script} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


async def store_module(ln: LiveNode, owner: Wallet) -> str:
    module = ans104.sign(owner, data=extract_hyper_aos(), tags=MODULE_TAGS)
    r = await ln.client.post("/~message@1.0/store", content=module.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return module.id


def test_readme_shows_the_recipes_verbatim() -> None:
    readme = README.read_text()
    for name in ("recipe_legacy.mjs", "recipe_mainnet.mjs"):
        code = (INTEROP_DIR / name).read_text()
        assert f"```js\n{code}```" in readme, f"README.md does not show tests/interop/{name}"


async def test_legacy_recipe_against_one_node(
    live: Live, rsa_wallet: Wallet, tmp_path: Path
) -> None:
    ln = await live(wallets=[wallet_mod.generate("rsa")])
    module = await store_module(ln, rsa_wallet)
    jwk = tmp_path / "me.json"
    wallet_mod.save(rsa_wallet, jwk)
    env = {"AONODE_URL": ln.url.rstrip("/"), "WALLET": str(jwk), "MODULE": module}
    out = await asyncio.to_thread(run_recipe, "recipe_legacy.mjs", env)
    pid = out["pid"]
    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    assert [a["message"] for a in native] == [pid, *out["messages"]]
    assert out["result"]["Output"]["data"] == "21" and out["result"]["Error"] is None
    assert out["dryrun"]["Output"]["data"] == "40"
    # results: the legacy CU's connection, newest first, two a page
    edges = out["results"]["edges"]
    assert len(edges) == 2  # (aoconnect keeps only the edges of the page)
    assert edges[0]["node"]["Output"] == out["result"]["Output"]  # slot 2, then slot 1
    slots = [json.loads(base64.urlsafe_b64decode(e["cursor"] + "==")) for e in edges]
    assert [c["ordinate"] for c in slots] == ["2", "1"]


async def test_scheduler_utils_find_the_node_through_its_graphql(
    live: Live, run_node: RunNode, rsa_wallet: Wallet
) -> None:
    ln = await live()
    pid = (await _spawn(ln, rsa_wallet))["process"]
    url = ln.url.rstrip("/")
    out = await asyncio.to_thread(
        run_node, "scheduler_utils_flow.mjs", {"url": url, "address": ln.node.address, "pid": pid}
    )
    assert out["validate"] is True and out["unknown"] == "TransactionNotFound"
    assert out["raw"] == {"url": url}
    assert out["locate"] == {"url": url, "address": ln.node.address}
    assert out["getProcess"]["id"] == pid
    tags = {t["name"]: t["value"] for t in out["getProcess"]["tags"]}
    assert tags["Scheduler"] == ln.node.address


async def _spawn(ln: LiveNode, user: Wallet) -> dict[str, Any]:
    proc = sign_process(user, ln.node.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return {"process": proc.id}


async def test_mainnet_recipe(live: Live, rsa_wallet: Wallet, tmp_path: Path) -> None:
    ln = await live()
    module = await store_module(ln, rsa_wallet)
    jwk = tmp_path / "me.json"
    wallet_mod.save(rsa_wallet, jwk)
    env = {"AONODE_URL": ln.url.rstrip("/"), "WALLET": str(jwk), "MODULE": module}
    out = await asyncio.to_thread(run_recipe, "recipe_mainnet.mjs", env)
    assert out["slot"] == 2
    assert (await ln.client.get(f"/{out['pid']}/slot")).json()["current"] == 2
    assert out["result"]["Output"]["data"] == "21" and out["result"]["Error"] is None
    assert out["dryrun"]["Output"]["data"] == "40"
