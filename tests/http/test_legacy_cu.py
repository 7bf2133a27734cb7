"""The legacy Compute-Unit reading routes (``/results``, ``/state``, ``/cron``) over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aonode.codec.b64 import b64url_decode
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message
from tests.http.test_legacy import RAW, UNKNOWN, legacy_send, legacy_spawn

Live = Callable[..., Awaitable[LiveNode]]
LUA = [("Execution-Device", "lua@5.3a")]


async def _process(ln: LiveNode, user: Wallet, n: int) -> tuple[str, list[str]]:
    pid = await legacy_spawn(ln, user, extra=LUA)
    ids = [await legacy_send(ln, user, pid, f"return {i} * 10", action="Eval") for i in range(n)]
    return pid, ids


def _data(edges: list[dict[str, Any]]) -> list[Any]:
    return [e["node"]["Data"] for e in edges]


async def _all(ln: LiveNode, pid: str, sort: str, limit: int) -> list[dict[str, Any]]:
    """Every edge, paging with the cursor of the last edge as the legacy CU's clients do."""
    edges: list[dict[str, Any]] = []
    params: dict[str, Any] = {"sort": sort, "limit": limit}
    while True:
        r = await ln.client.get(f"/results/{pid}", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["edges"]) <= limit
        edges += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            return edges
        params["from" if sort == "ASC" else "to"] = page["edges"][-1]["cursor"]
        if sort == "DESC":  # ``to`` is inclusive: the next page starts below the cursor
            params["to"] = _before(page["edges"][-1]["cursor"])


def _before(cursor: str) -> str:
    doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    doc["ordinate"] = str(int(doc["ordinate"]) - 1)
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


async def test_results_pages_in_both_orders(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid, _ = await _process(ln, user_wallet, 5)
    expected = [
        "",
        "0",
        "10",
        "20",
        "30",
        "40",
    ]  # slot 0 is the process itself (no output: "" as aos)
    asc = await _all(ln, pid, "ASC", 2)
    assert _data(asc) == expected
    assert all(set(e["node"]) >= {"Output", "Messages", "Spawns", "Error"} for e in asc)
    desc = await _all(ln, pid, "DESC", 4)
    assert _data(desc) == expected[::-1]

    # the default: ASC, 25 a page, everything here in one
    page = (await ln.client.get(f"/results/{pid}")).json()
    assert _data(page["edges"]) == expected and page["pageInfo"]["hasNextPage"] is False

    # a bare timestamp bounds the range too: from exclusive, to inclusive
    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    t2 = native[2]["timestamp"]
    r = await ln.client.get(f"/results/{pid}", params={"to": str(t2)})
    got = [e["node"]["Data"] for e in r.json()["edges"]]
    assert got == [expected[a["slot"]] for a in native if a["timestamp"] <= t2]
    r = await ln.client.get(f"/results/{pid}", params={"from": str(t2), "to": ""})
    got = [e["node"]["Data"] for e in r.json()["edges"]]
    assert got == [expected[a["slot"]] for a in native if a["timestamp"] > t2]


async def test_results_bad_input_is_a_legacy_4xx(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid, _ = await _process(ln, user_wallet, 1)
    for params in ({"sort": "UP"}, {"limit": "0"}, {"limit": "x"}, {"from": "not-a-cursor"}):
        r = await ln.client.get(f"/results/{pid}", params=params)
        assert r.status_code == 400, (params, r.text)
        assert isinstance(r.json()["error"], str)
    for path in (f"/results/{UNKNOWN}", f"/state/{UNKNOWN}", f"/cron/{UNKNOWN}"):
        r = await ln.client.get(path)
        assert r.status_code == 404, (path, r.text)
    r = await ln.client.get(f"/state/{pid}", params={"to": "1"})
    assert r.status_code == 400
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 1  # nothing changed


async def test_state_is_the_snapshot_at_the_latest_slot(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid, _ = await _process(ln, user_wallet, 2)
    r = await ln.client.get(f"/state/{pid}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["ao-slot"] == "2"
    snap = (await ln.client.get(f"/{pid}~process@1.0/snapshot")).json()
    assert snap["slot"] == 2 and r.content == b64url_decode(snap["state"])


async def test_cron_lists_the_node_signed_firings(
    live: Live, user_wallet: Wallet, ed_wallet: Wallet
) -> None:
    ln = await live()  # its wallet is ed_wallet: the one ~cron@1.0 signs firings with
    pid, _ = await _process(ln, user_wallet, 1)
    fired = sign_message(ed_wallet, pid, data=b"return 'tick'", action="Eval")
    r = await ln.client.post("/", content=fired.item.raw, headers=RAW)
    assert r.status_code == 200, r.text
    await legacy_send(ln, user_wallet, pid, "return 'user'", action="Eval")
    r = await ln.client.get(f"/cron/{pid}")
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["edges"]) == 1 and page["pageInfo"]["hasNextPage"] is False
    result = await ln.client.get(f"/result/{fired.id}", params={"process-id": pid})
    assert page["edges"][0]["node"] == result.json()
    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    assert page["edges"][0]["cursor"] == str(native[2]["timestamp"])


async def test_empty_cursor_is_no_cursor(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid, ids = await _process(ln, user_wallet, 2)
    r = await ln.client.get(f"/{pid}", params={"from": "", "to": "", "limit": "100"})
    assert r.status_code == 200, r.text
    got = [e["node"]["message"]["id"] for e in r.json()["edges"]]
    assert got == [pid, *ids]  # a first page: it opens with the process
    r = await ln.client.get(f"/{pid}", params={"from-nonce": "", "limit": ""})
    assert r.status_code == 200, r.text
    assert [e["node"]["message"]["id"] for e in r.json()["edges"]] == [pid, *ids]
