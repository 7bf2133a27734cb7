"""The scheduler's HTTP contract (API.md), over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from aonode.codec import jsonform
from aonode.codec.b64 import b64url_encode
from aonode.config import Mode
from aonode.errors import MethodNotAllowed, Overloaded
from aonode.http.responses import error_response
from aonode.scheduler.hashchain import verify_chain
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]


async def spawn(ln: LiveNode, user: Wallet) -> str:
    proc = sign_process(user, ln.node.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    assert r.headers["process"] == proc.id
    assert r.json()["slot"] == 0
    return proc.id


async def test_schedule_read_back_and_formats(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn(ln, user_wallet)
    sent = []
    for i in range(5):
        m = sign_message(user_wallet, pid, data=f"m{i}".encode())
        if i % 2:  # the JSON data-item form is accepted as well as binary
            r = await ln.client.post(
                f"/{pid}~process@1.0/schedule",
                content=orjson.dumps(jsonform.to_json(m.item)),
                headers={"content-type": "application/json"},
            )
        else:
            r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
        assert r.json()["slot"] == i + 1
        sent.append(m.id)

    r = await ln.client.get(f"/{pid}~process@1.0/schedule")
    page = r.json()
    assert page["type"] == "schedule" and page["process"] == pid
    assert [a["slot"] for a in page["assignments"]] == list(range(6))
    assert [a["message"] for a in page["assignments"][1:]] == sent
    assert page["continues"] is False and page["next"] is None
    links = [(a["slot"], a["message"], a["hash-chain"]) for a in page["assignments"]]
    assert verify_chain(links) is None

    r = await ln.client.get("/~scheduler@1.0/schedule", params={"target": pid, "from": 2, "to": 4})
    assert [a["slot"] for a in r.json()["assignments"]] == [2, 3, 4]
    r = await ln.client.get(f"/{pid}/schedule", params={"from": 1, "limit": 2})
    body = r.json()
    assert [a["slot"] for a in body["assignments"]] == [1, 2]
    assert body["continues"] is True and body["next"] == 3

    r = await ln.client.get(
        "/~scheduler@1.0/schedule", params={"target": pid, "accept": "application/aos-2"}
    )
    aos = r.json()
    assert aos["page_info"]["process"] == pid and aos["page_info"]["has_next_page"] is False
    assert [e["cursor"] for e in aos["edges"]] == list(range(6))
    edge = aos["edges"][1]
    assert edge["node"]["message"]["Id"] == sent[0]
    assert edge["node"]["message"]["Owner"] == user_wallet.address
    tags = {t["name"]: t["value"] for t in edge["node"]["assignment"]["Tags"]}
    assert tags["Slot"] == "1" and tags["Message"] == sent[0] and tags["Process"] == pid

    r = await ln.client.get(f"/{pid}~process@1.0/slot")
    slot = r.json()
    assert slot["process"] == pid and slot["current"] == 5
    assert slot["hash-chain"] == page["assignments"][-1]["hash-chain"]
    assert slot["wallet-address"] == ln.node.address
    r = await ln.client.get(f"/{pid}/slot/current")
    assert r.text == "5"

    r = await ln.client.get("/~scheduler@1.0/status")
    status = r.json()
    assert pid in status["processes"] and status["address"] == ln.node.address
    assert status["mode"] == "local_confirmation"
    assert status["timestamp-source"]["source"] == "offline"
    r = await ln.client.get("/~meta@1.0/info/address")
    assert r.text == ln.node.address


async def test_spawn_via_process_device_and_repost(live: Live, user_wallet: Wallet) -> None:
    ln = await live(mode=Mode.AGGRESSIVE)
    proc = sign_process(user_wallet, ln.node.address)
    r = await ln.client.post("/~process@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200 and r.json()["process"] == proc.id
    m = sign_message(user_wallet, proc.id)
    first = (await ln.client.post(f"/{proc.id}/schedule", content=m.item.raw, headers=ANS)).json()
    again = (await ln.client.post(f"/{proc.id}/schedule", content=m.item.raw, headers=ANS)).json()
    assert first["slot"] == again["slot"] == 1
    assert first["id"] == again["id"]


async def test_message_store_and_fetch(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    m = sign_message(user_wallet, b64url_encode(os.urandom(32)), data=b"module source")
    r = await ln.client.post("/~message@1.0/store", content=m.item.raw, headers=ANS)
    assert r.json() == {"id": m.id}
    r = await ln.client.get(f"/~message@1.0/{m.id}")
    assert r.json()["signature"] == b64url_encode(m.item.signature)
    r = await ln.client.get(f"/~message@1.0/{m.id}", headers={"accept": "application/octet-stream"})
    assert r.content == b"module source"
    r = await ln.client.get(f"/~message@1.0/{b64url_encode(os.urandom(32))}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown-message"


def _tamper(raw: bytes, index: int) -> bytes:
    b = bytearray(raw)
    b[index] ^= 0x01
    return bytes(b)


async def test_bad_input_table(live: Live, user_wallet: Wallet, rsa_wallet: Wallet) -> None:
    ln = await live(max_body=64 * 1024)
    pid = await spawn(ln, user_wallet)
    good = sign_message(user_wallet, pid, data=b"payload")
    raw = good.item.raw
    good_json = jsonform.to_json(good.item)
    bad_sig_json = dict(good_json, tags=[{"name": "Action", "value": "Evil"}])
    no_target = sign_message(user_wallet, pid).item  # rebuilt below without a target
    from aonode.codec import ans104

    untargeted = ans104.sign(user_wallet, data=b"x", tags=[("Type", "Message")])
    foreign = sign_process(user_wallet, rsa_wallet.address)
    no_sched = ans104.sign(user_wallet, data=b"x", tags=[("Type", "Process")])
    ghost = sign_message(user_wallet, b64url_encode(os.urandom(32)))
    unknown_sig = b"\x63\x00" + raw[2:]
    sched = f"/{pid}/schedule"
    assert no_target is not None

    cases: list[tuple[str, str, str, dict[str, Any], int, str]] = [
        # (name, method, path, request kwargs, status, error code)
        (
            "truncated item",
            "POST",
            sched,
            {"content": raw[:100], "headers": ANS},
            400,
            "invalid-message",
        ),
        (
            "truncated data",
            "POST",
            sched,
            {"content": raw[:-3], "headers": ANS},
            400,
            "invalid-signature",
        ),
        (
            "bad signature",
            "POST",
            sched,
            {"content": _tamper(raw, 10), "headers": ANS},
            400,
            "invalid-signature",
        ),
        (
            "tampered data",
            "POST",
            sched,
            {"content": _tamper(raw, len(raw) - 1), "headers": ANS},
            400,
            "invalid-signature",
        ),
        (
            "unknown signature type",
            "POST",
            sched,
            {"content": unknown_sig, "headers": ANS},
            400,
            "unsupported-signature-type",
        ),
        (
            "wrong content type",
            "POST",
            sched,
            {"content": raw, "headers": {"content-type": "text/plain"}},
            415,
            "unsupported-media-type",
        ),
        ("no content type", "POST", sched, {"content": raw}, 415, "unsupported-media-type"),
        (
            "form content type",
            "POST",
            sched,
            {"content": b"a=b", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported-media-type",
        ),
        (
            "JSON garbage",
            "POST",
            sched,
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid-json",
        ),
        (
            "JSON not an item",
            "POST",
            sched,
            {"content": b'{"foo": 1}', "headers": {"content-type": "application/json"}},
            400,
            "invalid-message",
        ),
        (
            "JSON array",
            "POST",
            sched,
            {"content": b"[1,2]", "headers": {"content-type": "application/json"}},
            400,
            "invalid-message",
        ),
        (
            "JSON tampered tag",
            "POST",
            sched,
            {
                "content": orjson.dumps(bad_sig_json),
                "headers": {"content-type": "application/json"},
            },
            400,
            "invalid-signature",
        ),
        (
            "JSON bad base64",
            "POST",
            sched,
            {
                "content": orjson.dumps(dict(good_json, signature="***")),
                "headers": {"content-type": "application/json"},
            },
            400,
            "invalid-message",
        ),
        (
            "oversized body",
            "POST",
            sched,
            {"content": b"\x01" * (65 * 1024), "headers": ANS},
            413,
            "payload-too-large",
        ),
        ("empty body", "POST", sched, {"content": b"", "headers": ANS}, 400, "missing-body"),
        (
            "missing target",
            "POST",
            "/~scheduler@1.0/schedule",
            {"content": untargeted.raw, "headers": ANS},
            400,
            "missing-target",
        ),
        (
            "unknown process",
            "POST",
            "/~scheduler@1.0/schedule",
            {"content": ghost.item.raw, "headers": ANS},
            404,
            "unknown-process",
        ),
        (
            "process naming another scheduler",
            "POST",
            "/~scheduler@1.0/schedule",
            {"content": foreign.item.raw, "headers": ANS},
            409,
            "not-our-process",
        ),
        (
            "process naming no scheduler",
            "POST",
            "/~scheduler@1.0/schedule",
            {"content": no_sched.raw, "headers": ANS},
            400,
            "missing-scheduler",
        ),
        ("wrong method on schedule", "DELETE", sched, {}, 405, "method-not-allowed"),
        (
            "wrong method on slot",
            "POST",
            f"/{pid}/slot",
            {"content": raw, "headers": ANS},
            405,
            "method-not-allowed",
        ),
        ("wrong method on status", "PUT", "/~scheduler@1.0/status", {}, 405, "method-not-allowed"),
        ("negative from", "GET", sched, {"params": {"from": "-1"}}, 400, "bad-parameter"),
        ("non-numeric from", "GET", sched, {"params": {"from": "abc"}}, 400, "bad-parameter"),
        ("non-numeric to", "GET", sched, {"params": {"to": "1.5"}}, 400, "bad-parameter"),
        ("negative to", "GET", sched, {"params": {"to": "-3"}}, 400, "bad-parameter"),
        ("to below from", "GET", sched, {"params": {"from": "3", "to": "1"}}, 400, "bad-parameter"),
        ("zero limit", "GET", sched, {"params": {"limit": "0"}}, 400, "bad-parameter"),
        ("schedule without target", "GET", "/~scheduler@1.0/schedule", {}, 400, "missing-target"),
        (
            "schedule of unknown process",
            "GET",
            f"/{ghost.item.id}/schedule",
            {},
            404,
            "unknown-process",
        ),
        ("slot of unknown process", "GET", f"/{ghost.item.id}/slot", {}, 404, "unknown-process"),
        ("unknown route", "GET", "/nothing/here", {}, 404, "no-such-route"),
        (
            "store garbage",
            "POST",
            "/~message@1.0/store",
            {"content": b"\x01\x00garbage", "headers": ANS},
            400,
            "invalid-message",
        ),
    ]
    assert len(cases) >= 20
    before = (await ln.client.get(sched)).json()
    for name, method, path, kwargs, status, code in cases:
        r = await ln.client.request(method, path, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json", name
        err = r.json()["error"]
        assert err["code"] == code, (name, err)
        assert err["message"], name
    after = (await ln.client.get(sched)).json()
    assert after["assignments"] == before["assignments"]
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 0
    assert (await ln.client.get("/~scheduler@1.0/status")).json()["processes"] == [pid]
    # and the node still schedules
    r = await ln.client.post(sched, content=raw, headers=ANS)
    assert r.status_code == 200 and r.json()["slot"] == 1


async def test_declared_oversize_is_refused_before_reading(live: Live) -> None:
    ln = await live(max_body=4096)
    import asyncio

    host, port = ln.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /~scheduler@1.0/schedule HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/ans104\r\nContent-Length: 999999999\r\n\r\n"
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    writer.close()


def test_error_mapping_of_overload_and_method() -> None:
    r = error_response(Overloaded("full", retry_after=2))
    assert r.status == 503 and ("retry-after", "2") in r.headers
    assert orjson.loads(r.body)["error"]["code"] == "overloaded"
    r = error_response(MethodNotAllowed("no", allow=("GET",)))
    assert r.status == 405 and ("allow", "GET") in r.headers


@pytest.mark.parametrize("path", ["/~meta@1.0/info", "/"])
async def test_info_routes(live: Live, path: str) -> None:
    ln = await live()
    r = await ln.client.get(path)
    assert r.status_code == 200 and r.json()["address"] == ln.node.address


async def test_scheduler_location_records(live: Live, user_wallet: Wallet) -> None:
    from aonode.codec import ans104

    ln = await live()
    # the node registered itself on start
    own = (await ln.client.get("/~scheduler@1.0/location")).json()
    assert own["address"] == ln.node.address and own["url"] == ln.url and own["nonce"] == 0

    def record(url: str, nonce: int | None = None, kind: str = "Scheduler-Location") -> bytes:
        tags = [("Type", kind), ("Url", url), ("Time-To-Live", "60000")]
        if nonce is not None:
            tags.append(("Nonce", str(nonce)))
        return ans104.sign(user_wallet, tags=tags, anchor=os.urandom(32)).raw

    r = await ln.client.post(
        "/~scheduler@1.0/location", content=record("http://a.example:1", 3), headers=ANS
    )
    assert r.status_code == 200, r.text
    assert r.json()["address"] == user_wallet.address and r.json()["nonce"] == 3
    r = await ln.client.post(
        "/~scheduler@1.0/location", content=record("http://old:1", 2), headers=ANS
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "stale-location"
    r = await ln.client.post(
        "/~scheduler@1.0/location", content=record("http://next:1"), headers=ANS
    )
    assert r.status_code == 200 and r.json()["nonce"] == 4
    got = (
        await ln.client.get("/~scheduler@1.0/location", params={"address": user_wallet.address})
    ).json()
    assert got["url"] == "http://next:1" and got["time-to-live"] == 60000
    for bad, code in (
        (record("ftp://x"), "invalid-location"),
        (record("http://x:1", kind="Message"), "invalid-location"),
    ):
        r = await ln.client.post("/~scheduler@1.0/location", content=bad, headers=ANS)
        assert r.status_code == 400 and r.json()["error"]["code"] == code
    r = await ln.client.get(
        "/~scheduler@1.0/location", params={"address": b64url_encode(os.urandom(32))}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown-location"
    assert (
        await ln.client.get("/~scheduler@1.0/location", params={"address": user_wallet.address})
    ).json()["nonce"] == 4
