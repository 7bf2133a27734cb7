"""The hostile-corpus harness: one request that must be refused and change nothing.

For each case: snapshot every process's schedule and state and the store's row
counts, send the request over real HTTP, assert a 4xx answer with a JSON error
body (``{"error": ...}``; GraphQL's ``{"errors": [...]}``), snapshot again and
compare, then send a normal request that must succeed.  One node serves a
whole module (see :func:`start`), so the corpus stays fast.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import wasmtime

from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.http.server import free_port
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, serve_live, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
JSON = {"content-type": "application/json"}
TABLES = ("messages", "assignments", "processes", "locations", "records")


@dataclass(frozen=True, slots=True)
class Case:
    """One hostile request; ``{pid}`` in the path is the corpus's aos process."""

    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None  # the exact 4xx expected, when it matters
    code: str | None = None  # the error code expected (native surface)


@dataclass(slots=True)
class Corpus:
    """The node under attack and what the cases need to know about it."""

    ln: LiveNode
    db: Path
    user: Wallet
    pid: str  # an aos (lua@5.3a) process with a few messages
    bare: str  # a schedule-only process (no execution device)
    message: bytes  # a valid signed item (raw) for pid, never posted
    spawn: bytes  # a valid Type: Process item for this node, never posted
    images: dict[str, str]  # stored WASM images that cannot start: name → id

    async def snapshot(self) -> Any:
        node = self.ln.node
        per_process = []
        for pid in (self.pid, self.bare):
            info = await node.slot_info(pid)
            per_process.append((pid, info["current"], info["hash-chain"]))
        process = await node.require_process(self.pid)
        worker = await node.processes.worker(process)
        slot, results = await worker.now()
        at, state = await worker.snapshot()
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as db:
            counts = tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)
        return (
            per_process,
            (slot, results.data, at, hashlib.sha256(state).hexdigest()),
            counts,
            sorted(await node.store.processes()),
        )

    async def check(self, case: Case) -> None:
        before = await self.snapshot()
        url = case.path.format(pid=self.pid, bare=self.bare)
        r = await self.ln.client.request(case.method, url, content=case.body, headers=case.headers)
        assert 400 <= r.status_code < 500, (case.name, r.status_code, r.text[:300])
        if case.status is not None:
            assert r.status_code == case.status, (case.name, r.status_code, r.text[:300])
        doc = orjson.loads(r.content)
        assert isinstance(doc, dict) and ("error" in doc or "errors" in doc), (case.name, doc)
        if case.code is not None:
            assert doc["error"]["code"] == case.code, (case.name, doc)
        assert await self.snapshot() == before, case.name
        ok = await self.ln.client.get(f"/{self.pid}/slot")
        assert ok.status_code == 200 and ok.json()["current"] == before[0][0][1], case.name


async def start(tmp: Path, node_wallet: Wallet, user: Wallet, **changes: Any) -> Corpus:
    """A node on a real SQLite file with one aos process (3 slots) and one bare one."""
    config = replace(
        NodeConfig(data_dir=tmp, port=free_port("127.0.0.1"), async_cache=False),
        **changes,
    )
    db = tmp / "aonode.sqlite3"
    node = Node(config, wallets=[node_wallet], store=SQLiteStore(db), timestamps=OfflineSource())
    ln = await serve_live(node)
    proc = sign_process(user, node.address, extra=[("Execution-Device", "lua@5.3a")])
    bare = sign_process(user, node.address, data=b"bare")
    for item in (proc, bare):
        r = await ln.client.post("/~scheduler@1.0/schedule", content=item.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
    for code in ("X = 1", "X = X + 1"):
        m = sign_message(user, proc.id, data=code.encode(), action="Eval")
        r = await ln.client.post(f"/{proc.id}/schedule", content=m.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
    message = sign_message(user, proc.id, data=b"X = 100", action="Eval").item.raw
    spawn = sign_process(user, node.address, data=b"never").item.raw
    images = {}
    for name, wat in BAD_IMAGES.items():
        wasm = wasmtime.wat2wasm(f"(module {_MEMORY} {wat} {_HANDLE})")
        image = ans104.sign(user, data=wasm, tags=[("Content-Type", WASM)])
        r = await ln.client.post("/~message@1.0/store", content=image.raw, headers=ANS)
        assert r.status_code == 200, r.text
        images[name] = image.id
    return Corpus(ln, db, user, proc.id, bare.id, message, spawn, images)


WASM = "application/wasm"
_HANDLE = '(func (export "handle") (param i64 i64) (result i64) i64.const 0)'
_MEMORY = '(memory (export "memory") i64 1)'
# Images whose start code traps or never ends: a 400 image-cannot-start at spawn.
BAD_IMAGES = {
    "start-traps": "(func $s unreachable) (start $s)",
    "start-out-of-fuel": "(func $s (loop $l br $l)) (start $s)",
    "initialize-traps": '(func (export "_initialize") unreachable)',
}
