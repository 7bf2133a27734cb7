"""The legacy Scheduler-Unit surface over real HTTP: one schedule, two views."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}
RAW = {"content-type": "application/octet-stream", "accept": "application/json"}
LEGACY_TAGS = [
    "Process",
    "Epoch",
    "Nonce",
    "Hash-Chain",
    "Block-Height",
    "Timestamp",
    "Data-Protocol",
    "Type",
    "Variant",
    "Message",
]
UNKNOWN = "U" * 43


def tags(doc: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value"] for t in doc["tags"]}


async def legacy_spawn(
    ln: LiveNode, user: Wallet, extra: list[tuple[str, str]] | None = None
) -> str:
    proc = sign_process(user, ln.node.address, extra=extra or [])
    r = await ln.client.post("/", content=proc.item.raw, headers=RAW)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == proc.id and isinstance(body["timestamp"], int)
    return proc.id


async def legacy_send(
    ln: LiveNode, user: Wallet, pid: str, data: str = "", action: str = "Test"
) -> str:
    m = sign_message(user, pid, data=data.encode(), action=action)
    r = await ln.client.post("/", content=m.item.raw, headers=RAW)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == m.id
    return m.id


async def hb_send(ln: LiveNode, user: Wallet, pid: str, data: str = "") -> str:
    m = sign_message(user, pid, data=data.encode())
    r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return m.id


async def legacy_pages(ln: LiveNode, pid: str, **params: Any) -> list[dict[str, Any]]:
    """Every edge, paging as the legacy CU does: ``from`` = the last cursor while more."""
    edges: list[dict[str, Any]] = []
    query: dict[str, Any] = {"process-id": pid, **params}
    while True:
        r = await ln.client.get(f"/{pid}", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        edges += page["edges"]
        if not page["page_info"]["has_next_page"]:
            return edges
        key = "from-nonce" if "from-nonce" in params else "from"
        query[key] = page["edges"][-1]["cursor"]


async def test_info_and_timestamp(live: Live) -> None:
    ln = await live()
    for params in ({}, {"process-id": UNKNOWN}):  # ao-scheduler-utils' redirect check
        r = await ln.client.get("/", params=params)
        assert r.status_code == 200
        body = r.json()
        assert body["address"] == ln.node.address and body["timestamp"].isdigit()
    r = await ln.client.get("/timestamp", params={"process-id": UNKNOWN})
    body = r.json()
    assert body["timestamp"].isdigit()
    assert len(body["block_height"]) == 12 and body["block_height"].isdigit()


def legacy_chains(pid: str, native: list[dict[str, Any]]) -> list[str]:
    """The legacy SU's hash chain over a native schedule (research/peers.md): slot 0
    sha256(process id), then sha256(previous assignment id ‖ previous chain)."""
    chains: list[str] = []
    link = b""
    for i, a in enumerate(native):
        if a["slot"] == 0:
            link = hashlib.sha256(b64url_decode(pid)).digest()
        else:
            link = hashlib.sha256(b64url_decode(native[i - 1]["id"]) + link).digest()
        chains.append(b64url_encode(link))
    return chains


async def test_one_schedule_two_views(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await legacy_spawn(ln, user_wallet)
    ids = [pid]
    for i in range(6):  # alternate the surfaces
        send = legacy_send if i % 2 == 0 else hb_send
        ids.append(await send(ln, user_wallet, pid, f"m{i}"))

    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    aos2 = (
        await ln.client.get(
            "/~scheduler@1.0/schedule", params={"target": pid, "accept": "application/aos-2"}
        )
    ).json()["edges"]
    edges = await legacy_pages(ln, pid)
    assert [a["message"] for a in native] == ids
    assert [e["node"]["message"]["id"] for e in edges] == ids
    legacy = legacy_chains(pid, native)
    for a, e, h, chain in zip(native, edges, aos2, legacy, strict=True):
        t = tags(e["node"]["assignment"])
        assert list(t) == (LEGACY_TAGS if a["slot"] else LEGACY_TAGS[:-1])
        assert int(t["Nonce"]) == a["slot"] == int(h["cursor"])
        # the legacy view shows the legacy chain (what a legacy CU checks); the two
        # rules agree at slot 0 (sha256 of the process id) and differ after it
        assert t["Hash-Chain"] == chain
        assert (chain == a["hash-chain"]) == (a["slot"] == 0)
        assert int(t["Timestamp"]) == a["timestamp"] and e["cursor"] == str(a["timestamp"])
        assert t["Process"] == pid and t["Epoch"] == "0" and t["Type"] == "Assignment"
        assert int(t["Block-Height"]) == a["block-height"] and len(t["Block-Height"]) == 12
        assert t.get("Message", pid) == a["message"]
        assert e["node"]["assignment"]["id"] == a["id"] == h["node"]["assignment"]["Id"]
        assert e["node"]["assignment"]["owner"]["address"] == ln.node.address
        msg = e["node"]["message"]
        assert msg["owner"]["address"] == user_wallet.address == h["node"]["message"]["Owner"]
        assert (
            b64url_decode(a["body"]["data"]).decode() == msg["data"] == h["node"]["message"]["Data"]
        )
        assert msg["target"] == ("" if a["slot"] == 0 else pid)

    # one message, the latest, and the process, as the legacy CU reads them
    r = await ln.client.get(f"/{ids[3]}", params={"process-id": pid})
    assert r.status_code == 200 and r.json()["message"]["id"] == ids[3]
    assert tags(r.json()["assignment"])["Nonce"] == "3"
    latest = (await ln.client.get(f"/{pid}/latest")).json()
    assert tags(latest["assignment"])["Nonce"] == "6" and latest["message"]["id"] == ids[6]
    proc = (await ln.client.get(f"/processes/{pid}")).json()
    assert proc["process_id"] == pid and proc["timestamp"] == native[0]["timestamp"]
    assert proc["block"].isdigit() and proc["owner"]["address"] == user_wallet.address
    assert {"name": "Type", "value": "Process"} in proc["tags"]
    # HyperBEAM's legacy reader: proc-id and nonces (from exclusive, to inclusive)
    r = await ln.client.get(
        f"/{pid}", params={"proc-id": pid, "from-nonce": 1, "to-nonce": 4, "limit": 1000}
    )
    assert [e["cursor"] for e in r.json()["edges"]] == ["2", "3", "4"]


async def test_paging_never_skips_or_repeats(live: Live, user_wallet: Wallet) -> None:
    # concurrent posts (group commit): many slots share a millisecond
    ln = await live()
    pid = await legacy_spawn(ln, user_wallet)
    sent = await asyncio.gather(*(legacy_send(ln, user_wallet, pid, str(i)) for i in range(40)))
    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    assert sorted(a["message"] for a in native[1:]) == sorted(sent)
    everything = [a["message"] for a in native]
    for limit in (1, 2, 3, 7, 100):
        by_time = await legacy_pages(ln, pid, limit=limit)
        assert [e["node"]["message"]["id"] for e in by_time] == everything, limit
        by_nonce = await legacy_pages(ln, pid, limit=limit, **{"from-nonce": -1})
        assert [e["node"]["message"]["id"] for e in by_nonce] == everything, limit
    # from exclusive, to inclusive (timestamps)
    mid = native[20]["timestamp"]
    r = (await ln.client.get(f"/{pid}", params={"from": mid, "to": mid})).json()
    assert r["edges"] == [] and r["page_info"]["has_next_page"] is False
    r = (await ln.client.get(f"/{pid}", params={"from": mid - 1, "to": mid})).json()
    want = [a["message"] for a in native if a["timestamp"] == mid]
    assert [e["node"]["message"]["id"] for e in r["edges"]] == want
    # default page: 100; a first page opens with the process, a later one never does
    r = (await ln.client.get(f"/{pid}", params={"from": 0})).json()
    assert r["edges"][0]["node"]["message"]["id"] == native[1]["message"]


async def test_assign_an_existing_message(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await legacy_spawn(ln, user_wallet)
    other = await legacy_spawn(ln, user_wallet)
    m = sign_message(user_wallet, other, data=b"for other")
    assert (await ln.client.post("/", content=m.item.raw, headers=RAW)).status_code == 200
    for _ in range(2):  # a second assignment of the same message keeps its slot
        r = await ln.client.post("/", params={"process-id": pid, "assign": m.id}, headers=RAW)
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["timestamp"], int)
        schedule = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
        assert [a["message"] for a in schedule] == [pid, m.id]
        assert r.json()["id"] == schedule[1]["id"]
    got = (await ln.client.get(f"/{m.id}", params={"process-id": pid})).json()
    assert tags(got["assignment"])["Process"] == pid and tags(got["assignment"])["Nonce"] == "1"
    assert got["message"]["target"] == other
    # a message stored, never scheduled, can be assigned too
    stored = sign_message(user_wallet, other, data=b"stored")
    await ln.client.post("/~message@1.0/store", content=stored.item.raw, headers=ANS)
    r = await ln.client.post("/", params={"process-id": pid, "assign": stored.id})
    assert r.status_code == 200, r.text
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 2


async def test_result_and_dryrun_as_a_compute_unit(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await legacy_spawn(ln, user_wallet, extra=[("Execution-Device", "lua@5.3a")])
    await legacy_send(ln, user_wallet, pid, "X = 21", action="Eval")
    mid = await legacy_send(ln, user_wallet, pid, "return X * 2", action="Eval")
    r = await ln.client.get(f"/result/{mid}", params={"process-id": pid})
    assert r.status_code == 200, r.text
    assert r.json()["Data"] == "42" and r.json()["Error"] is None
    body = {
        "Target": pid,
        "Owner": user_wallet.address,
        "Data": "return X + 1",
        "Tags": [{"name": "Action", "value": "Eval"}],
    }
    r = await ln.client.post("/dry-run", params={"process-id": pid}, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["Data"] == "22"
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 2


def _tampered(raw: bytes) -> bytes:
    flipped = bytearray(raw)
    flipped[-1] ^= 1  # the data: the signature no longer covers it
    return bytes(flipped)


async def test_bad_input_is_a_legacy_4xx_and_changes_nothing(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    pid = await legacy_spawn(ln, user_wallet)
    mid = await legacy_send(ln, user_wallet, pid, "x")
    good = sign_message(user_wallet, pid, data=b"never scheduled")
    no_protocol = ans104.sign(
        user_wallet, tags=[("Type", "Message")], target=b64url_decode(pid), anchor=os.urandom(32)
    )
    wrong_type = ans104.sign(
        user_wallet,
        tags=[("Data-Protocol", "ao"), ("Type", "Assignment")],
        target=b64url_decode(pid),
        anchor=os.urandom(32),
    )
    to_unknown = sign_message(user_wallet, UNKNOWN)
    cases: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("unknown process page", "GET", f"/{UNKNOWN}", {"params": {"process-id": UNKNOWN}}, 404),
        ("unknown process, no process-id", "GET", f"/{UNKNOWN}", {}, 404),
        (
            "message on an unknown process",
            "GET",
            f"/{mid}",
            {"params": {"process-id": UNKNOWN}},
            404,
        ),
        ("unknown latest", "GET", f"/{UNKNOWN}/latest", {}, 404),
        ("unknown process record", "GET", f"/processes/{UNKNOWN}", {}, 404),
        ("process record, not an id", "GET", "/processes/nope", {}, 400),
        ("huge limit", "GET", f"/{pid}", {"params": {"limit": 10**9}}, 400),
        ("limit just over", "GET", f"/{pid}", {"params": {"limit": 1001}}, 400),
        ("zero limit", "GET", f"/{pid}", {"params": {"limit": 0}}, 400),
        ("non-numeric limit", "GET", f"/{pid}", {"params": {"limit": "ten"}}, 400),
        ("non-numeric from", "GET", f"/{pid}", {"params": {"from": "yesterday"}}, 400),
        ("non-numeric to", "GET", f"/{pid}", {"params": {"to": "1e3"}}, 400),
        ("non-numeric from-nonce", "GET", f"/{pid}", {"params": {"from-nonce": "a"}}, 400),
        ("from-nonce below -1", "GET", f"/{pid}", {"params": {"from-nonce": -2}}, 400),
        ("negative from", "GET", f"/{pid}", {"params": {"from": -5}}, 400),
        ("bad process-id", "GET", f"/{mid}", {"params": {"process-id": "x"}}, 400),
        ("garbage body", "POST", "/", {"content": b"garbage", "headers": RAW}, 400),
        ("empty body", "POST", "/", {"content": b"", "headers": RAW}, 400),
        ("tampered", "POST", "/", {"content": _tampered(good.item.raw), "headers": RAW}, 400),
        ("no Data-Protocol", "POST", "/", {"content": no_protocol.raw, "headers": RAW}, 400),
        ("Type Assignment", "POST", "/", {"content": wrong_type.raw, "headers": RAW}, 400),
        ("message to unknown process", "POST", "/", {"content": to_unknown.item.raw}, 404),
        ("assign without message", "POST", "/", {"params": {"process-id": pid}}, 400),
        ("assign unknown", "POST", "/", {"params": {"process-id": pid, "assign": UNKNOWN}}, 404),
        (
            "assign to unknown process",
            "POST",
            "/",
            {"params": {"process-id": UNKNOWN, "assign": mid}},
            404,
        ),
        (
            "assign with exclude",
            "POST",
            "/",
            {"params": {"process-id": pid, "assign": mid, "exclude": "Data"}},
            400,
        ),
        ("result without process-id", "GET", f"/result/{mid}", {}, 400),
        (
            "result of unknown message",
            "GET",
            f"/result/{UNKNOWN}",
            {"params": {"process-id": pid}},
            404,
        ),
        (
            "dry-run on unknown",
            "POST",
            "/dry-run",
            {"params": {"process-id": UNKNOWN}, "json": {}},
            404,
        ),
        ("wrong method on root", "PUT", "/", {}, 405),
        ("wrong method on timestamp", "POST", "/timestamp", {}, 405),
        ("wrong method on a page", "DELETE", f"/{pid}", {}, 405),
    ]
    before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    processes = (await ln.client.get("/~scheduler@1.0/status")).json()["processes"]
    for name, method, path, kwargs, status in cases:
        r = await ln.client.request(method, path, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        body = r.json()
        assert isinstance(body["error"], str) and body["error"], (name, body)
        assert list(body) == ["error"], (name, body)
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == before
    assert (await ln.client.get("/~scheduler@1.0/status")).json()["processes"] == processes
    assert (await ln.client.get(f"/{good.id}", params={"process-id": pid})).status_code == 404


@pytest.mark.parametrize(
    "path", ["/{pid}/slot", "/{pid}~process@1.0/slot", "/{pid}/schedule", "/~meta@1.0/info"]
)
async def test_hyperbeam_paths_are_untouched(live: Live, user_wallet: Wallet, path: str) -> None:
    ln = await live()
    pid = await legacy_spawn(ln, user_wallet)
    r = await ln.client.get(path.format(pid=pid))
    assert r.status_code == 200, r.text
    assert "error" not in r.json()
