"""Reading back what a node uploaded to arlocal (a real local Arweave node).

arlocal indexes each item of a bundle transaction under its own id, but only
items whose owner it knows as a wallet (an unknown owner's item is dropped
without an error), and it charges the bundle's poster.  So tests register the
node's wallet (funded) and the client's (balance 0) with ``/mint`` first: the
set-up of the target a real deployment does by funding its wallet.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from aonode.codec.b64 import b64url_encode
from aonode.codec.bundle import unpack
from tests.arlocal_fixtures import INTEROP

FUNDS = 10**15  # winston: plenty for every bundle of a test


async def register(url: str, address: str, winston: int = FUNDS) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.get(f"/mint/{address}/{winston}")
        assert r.status_code == 200, r.text


async def graphql(url: str, query: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post("/graphql", json={"query": query})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]


async def held(url: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` arlocal holds (indexed, by id)."""
    found: set[str] = set()
    for i in range(0, len(ids), 100):
        chunk = json.dumps(ids[i : i + 100])
        query = "{ transactions(ids: IDS, first: 100) { edges { node { id } } } }"
        data = await graphql(url, query.replace("IDS", chunk))
        found.update(e["node"]["id"] for e in data["transactions"]["edges"])
    return found


@dataclass
class Uploaded:
    bundles: list[str]  # bundle transaction ids posted by the node
    items: dict[str, bytes]  # item id → raw bytes, as arlocal serves them back
    copies: Counter[str]  # item id → in how many bundles it was sent


async def uploaded_by(url: str, owner: str) -> Uploaded:
    """Every bundle ``owner`` posted, fetched back from arlocal and unpacked."""
    query = (
        '{ transactions(owners: ["OWNER"], tags: [{name: "Bundle-Format", values: ["binary"]}], '
        "first: 100) { pageInfo { hasNextPage } edges { node { id } } } }"
    )
    data = await graphql(url, query.replace("OWNER", owner))
    assert not data["transactions"]["pageInfo"]["hasNextPage"]
    result = Uploaded([], {}, Counter())
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for edge in data["transactions"]["edges"]:
            tx = edge["node"]["id"]
            r = await client.get(f"/{tx}")
            assert r.status_code == 200, r.text
            result.bundles.append(tx)
            for item_id, raw in unpack(r.content):
                result.items[item_id] = raw
                result.copies[item_id] += 1
    return result


def arbundles_verify(raws: list[bytes]) -> list[dict[str, Any]]:
    """Verify and read items with the real arbundles (``tests/interop/arbundles_verify.js``)."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH: run ./scripts/test"
    out = subprocess.run(
        [node, "arbundles_verify.js"],
        cwd=INTEROP,
        input=json.dumps({"items": [b64url_encode(r) for r in raws]}),
        capture_output=True,
        text=True,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(out.stdout)["results"]
    return results


def tag(result: dict[str, Any], name: str) -> str | None:
    for t in result["tags"]:
        if t["name"] == name:
            return str(t["value"])
    return None


async def forward(listen_port: int, target_port: int) -> asyncio.Server:
    """Open ``listen_port`` on 127.0.0.1 as a plain TCP relay to ``target_port``.

    A node whose upload target is ``listen_port`` sees the target come up only
    when this is called: after the test has registered its wallets with arlocal,
    so no upload can reach arlocal before arlocal would keep its items."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            target_r, target_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, target_w), pipe(target_r, client_w))

    return await asyncio.start_server(relay, "127.0.0.1", listen_port)
