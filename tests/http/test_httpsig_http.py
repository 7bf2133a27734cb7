"""httpsig@1.0 (RFC 9421) messages over real HTTP: scheduled, stored, computed, verified."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable

import pytest
from http_sfv.dictionary import Dictionary

from aonode.codec import httpsig
from aonode.codec.b64 import b64url_encode
from aonode.codec.httpsig_sign import content_digest, sign
from aonode.ops.verify import verify_schedule
from aonode.scheduler.hashchain import verify_chain
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]


def hs_message(user: Wallet, pid: str, data: str, **keys: str) -> tuple[dict[str, str], bytes]:
    fields = {"Type": "Message", "Action": "Eval", "target": pid, "nonce": os.urandom(6).hex()}
    body = data.encode()
    return sign(user, fields | keys, body=body, path=f"/{pid}~process@1.0/schedule"), body


async def post_hs(ln: LiveNode, pid: str, headers: dict[str, str], body: bytes) -> int:
    r = await ln.client.post(f"/{pid}~process@1.0/schedule", headers=headers, content=body)
    assert r.status_code == 200, r.text
    slot: int = r.json()["slot"]
    return slot


async def test_interleaved_schedule_formats_and_verify(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address, extra=[("Execution-Device", "lua@5.3a")])
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    pid = proc.id
    ids = []
    for i in range(4):
        if i % 2 == 0:
            headers, body = hs_message(user_wallet, pid, f"X = {i}")
            ids.append(httpsig.parse("POST", "/", "", headers, body).id)
            slot = await post_hs(ln, pid, headers, body)
        else:
            m = sign_message(user_wallet, pid, data=f"X = X + {i}".encode(), action="Eval")
            ids.append(m.id)
            r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
            slot = r.json()["slot"]
        assert slot == i + 1
    # The same httpsig message again keeps its slot.
    assert await post_hs(ln, pid, *hs_message(user_wallet, pid, "return X")) == 5
    page = (await ln.client.get(f"/{pid}/schedule")).json()
    assert [a["message"] for a in page["assignments"][1:5]] == ids
    assert (
        verify_chain([(a["slot"], a["message"], a["hash-chain"]) for a in page["assignments"]])
        is None
    )
    body = page["assignments"][1]["body"]
    assert body["codec"] == "httpsig@1.0" and body["id"] == ids[0]
    assert body["fields"]["action"] == "Eval" and "user-agent" not in body["fields"]

    aos = (await ln.client.get(f"/{pid}/schedule", params={"accept": "application/aos-2"})).json()
    msg = aos["edges"][1]["node"]["message"]
    assert msg["Id"] == ids[0] and msg["Owner"] == user_wallet.address
    assert msg["Target"] == pid and msg["Data"] == "X = 0"
    assert {"name": "Action", "value": "Eval"} in msg["Tags"]

    # Computed like any message: Owner is the signer, so aos runs the Eval.
    r = await ln.client.get(f"/{pid}~process@1.0/compute", params={"slot": 5})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == "5"  # X = 0; X + 1; X = 2; X + 3

    again = await ln.client.post(
        f"/{pid}~process@1.0/schedule", headers=headers_of(page, 1), content=b"X = 0"
    )
    assert again.json()["slot"] == 1

    stored = (await ln.client.get(f"/~message@1.0/{ids[0]}")).json()
    assert stored["codec"] == "httpsig@1.0"
    raw = await ln.client.get(
        f"/~message@1.0/{ids[0]}", headers={"accept": "application/octet-stream"}
    )
    assert raw.content == b"X = 0"

    assert await verify_schedule(ln.url, pid) == (None, 6)
    assert await verify_schedule(str(ln.node.config.data_dir), pid) == (None, 6)


def headers_of(page: dict[str, object], slot: int) -> dict[str, str]:
    """The signed headers of an httpsig body on a schedule page (to post it again)."""
    assignments = page["assignments"]
    assert isinstance(assignments, list)
    fields: dict[str, str] = assignments[slot]["body"]["fields"]
    return fields


async def test_spawn_by_httpsig(live: Live, rsa_wallet: Wallet) -> None:
    ln = await live()
    keys = {"Type": "Process", "Scheduler": ln.node.address, "Execution-Device": "lua@5.3a"}
    headers = sign(rsa_wallet, keys, body=b"", path="/~scheduler@1.0/schedule")
    pid = httpsig.parse("POST", "/", "", headers, b"").id
    r = await ln.client.post("/~scheduler@1.0/schedule", headers=headers, content=b"")
    assert r.status_code == 200, r.text
    assert r.headers["process"] == pid and r.json()["slot"] == 0
    slot = await post_hs(ln, pid, *hs_message(rsa_wallet, pid, "return 6 * 7"))
    r = await ln.client.get(f"/{pid}/compute", params={"slot": slot})
    assert r.json()["results"]["data"] == "42"


@pytest.mark.parametrize("case", ["garbage-input", "tampered", "missing", "digest", "expired"])
async def test_bad_httpsig_changes_nothing(live: Live, user_wallet: Wallet, case: str) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address)
    await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    pid = proc.id
    now = int(time.time())
    headers, body = hs_message(user_wallet, pid, "return 1")
    expect = {
        "garbage-input": "invalid-signature-input",
        "tampered": "invalid-signature",
        "missing": "missing-component",
        "digest": "content-digest-mismatch",
        "expired": "signature-expired",
    }[case]
    if case == "garbage-input":
        headers["signature-input"] = "http-sig-1=(((;;"
    elif case == "tampered":
        headers["action"] = "Transfer"
    elif case == "missing":
        del headers["action"]
    elif case == "digest":
        headers["content-digest"] = content_digest(b"something else")
    else:
        fields = {"Type": "Message", "target": pid}
        path = f"/{pid}~process@1.0/schedule"
        headers = sign(user_wallet, fields, body=body, path=path, expires=now - 1)
    r = await ln.client.post(f"/{pid}~process@1.0/schedule", headers=headers, content=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == expect
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 0
    r = await ln.client.post("/~message@1.0/store", headers=headers, content=body)
    assert r.status_code == 400
    would_be = b64url_encode(hashlib.sha256(_signature(headers["signature"])).digest())
    assert (await ln.client.get(f"/~message@1.0/{would_be}")).status_code == 404
    assert await ln.node.store.get_message(would_be) is None


def _signature(header: str) -> bytes:
    d = Dictionary()
    d.parse(header.encode())
    (member,) = d.values()
    assert isinstance(member.value, bytes)
    return member.value


async def test_large_body_is_checked_off_the_loop(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address)
    await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    data = os.urandom(200 * 1024).hex()  # 400 KiB, over the inline-verification limit
    headers, body = hs_message(user_wallet, proc.id, data)
    assert await post_hs(ln, proc.id, headers, body) == 1
    r = await ln.client.post(
        f"/{proc.id}~process@1.0/schedule",
        headers=headers,
        content=body[:-1] + (b"1" if body.endswith(b"0") else b"0"),
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "content-digest-mismatch"
    mid = httpsig.parse("POST", "/", "", headers, body).id
    got = await ln.client.get(
        f"/~message@1.0/{mid}", headers={"accept": "application/octet-stream"}
    )
    assert got.content == body
