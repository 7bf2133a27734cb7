"""The abuse suite (127.0.0.1 only, bounded): floods, forged identities, slow connections.

Each attack runs against a real node over real HTTP while a probe — another
signer, another client address — keeps asking; the attack is refused or cut
off and the probe is answered throughout.  Quotas are configured small here
(a refill of one token an hour, so nothing refills during a test): the
defaults' size is a choice argued in the README, the mechanism is what these
prove.  Cron storms and a second node on the data dir are in ``auth``'s tests.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import httpx
import orjson

from aonode import wallet as wallet_mod
from aonode.codec import jsonform
from aonode.codec.b64 import b64url_encode
from aonode.codec.httpsig_sign import sign as hs_sign
from aonode.quotas import Rate
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
HOURLY = 1 / 3600  # one token an hour: no refill within a test


async def spawn(ln: LiveNode, user: Wallet, lua: bool = False) -> str:
    extra = [("Execution-Device", "lua@5.3a")] if lua else []
    proc = sign_process(user, ln.node.address, data=os.urandom(8), extra=extra)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return proc.id


def assert_quota(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]  # native {"code", "message"}; legacy-shaped: the message
    assert error["code"] == "quota-exceeded" if isinstance(error, dict) else "quota" in error


async def test_message_flood_is_cut_while_another_signer_is_served(live: Live) -> None:
    ln = await live(quota_messages=Rate(30, HOURLY))
    flooder, prober = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    pid = await spawn(ln, flooder)  # the spawn was message 1 of 30
    probe_pid = await spawn(ln, prober)

    async def flood(i: int) -> httpx.Response:
        m = sign_message(flooder, pid, data=str(i).encode())
        path = f"/{pid}/schedule" if i % 2 else "/"  # native and legacy surfaces
        return await ln.client.post(path, content=m.item.raw, headers=ANS)

    async def probe() -> list[int]:
        statuses = []
        for i in range(10):
            m = sign_message(prober, probe_pid, data=str(i).encode())
            r = await ln.client.post(f"/{probe_pid}/schedule", content=m.item.raw, headers=ANS)
            statuses.append(r.status_code)
            statuses.append((await ln.client.get("/~scheduler@1.0/status")).status_code)
        return statuses

    *flooded, probed = await asyncio.gather(*(flood(i) for i in range(60)), probe())
    assert probed == [200] * 20
    accepted = [r for r in flooded if r.status_code == 200]
    assert len(accepted) == 29  # 30 messages, one of them the spawn
    for r in flooded:
        if r.status_code != 200:
            assert_quota(r)
    info = await ln.node.slot_info(pid)
    assert info["current"] == 29  # refused messages took no slot
    # the legacy surface charges the same signer
    m = sign_message(flooder, pid, data=b"legacy")
    assert_quota(await ln.client.post("/", content=m.item.raw, headers=ANS))
    assert (await ln.node.slot_info(probe_pid))["current"] == 10


async def test_spawn_flood_is_cut(live: Live) -> None:
    ln = await live(quota_spawns=Rate(5, HOURLY))
    flooder, prober = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")

    async def one(user: Wallet, path: str) -> httpx.Response:
        proc = sign_process(user, ln.node.address, data=os.urandom(8))
        return await ln.client.post(path, content=proc.item.raw, headers=ANS)

    paths = ["/~scheduler@1.0/schedule", "/push", "/"]
    results = await asyncio.gather(
        *(one(flooder, paths[i % 3]) for i in range(12)), one(prober, "/push")
    )
    *flooded, probed = results
    assert probed.status_code == 200, probed.text
    assert sum(r.status_code == 200 for r in flooded) == 5
    for r in flooded:
        if r.status_code != 200:
            assert_quota(r)
    assert len(await ln.node.store.processes()) == 6


async def test_stored_bytes_quota(live: Live) -> None:
    ln = await live(quota_store_bytes=Rate(8192, HOURLY))
    user, other = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    target = b64url_encode(os.urandom(32))
    items = [sign_message(user, target, data=os.urandom(3000)) for _ in range(3)]
    for m in items[:2]:
        r = await ln.client.post("/~message@1.0/store", content=m.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
    r = await ln.client.post("/~message@1.0/store", content=items[2].item.raw, headers=ANS)
    assert_quota(r)
    assert await ln.node.store.get_message(items[2].id) is None
    m = sign_message(other, target, data=os.urandom(3000))
    r = await ln.client.post("/~message@1.0/store", content=m.item.raw, headers=ANS)
    assert r.status_code == 200


async def test_read_flood_from_one_address_spares_another(live: Live) -> None:
    ln = await live(quota_reads=Rate(40, HOURLY))
    other = httpx.AsyncClient(
        base_url=ln.url, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    )
    try:

        async def read(client: httpx.AsyncClient) -> int:
            return (await client.get("/~scheduler@1.0/status")).status_code

        flooded = await asyncio.gather(*(read(ln.client) for _ in range(80)))
        assert flooded.count(200) == 40 and flooded.count(429) == 40
        assert [await read(other) for _ in range(10)] == [200] * 10
        r = await ln.client.get("/~scheduler@1.0/status")
        assert_quota(r)
    finally:
        await other.aclose()


async def test_forged_identities_are_refused(live: Live) -> None:
    ln = await live()
    user, victim = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    pid = await spawn(ln, user)
    before = await ln.node.slot_info(pid)
    chain = (before["current"], before["hash-chain"])

    # an ANS-104 item whose owner is the victim's key, signed by someone else
    m = sign_message(user, pid, data=b"steal")
    raw = m.item.raw
    forged = raw[:66] + victim.owner + raw[98:]
    r = await ln.client.post(f"/{pid}/schedule", content=forged, headers=ANS)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-signature"
    # the JSON item form claiming the victim as Owner
    doc = jsonform.to_json(m.item) | {"owner": b64url_encode(victim.owner)}
    r = await ln.client.post(
        f"/{pid}/schedule", content=orjson.dumps(doc), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-signature"
    # httpsig signed by one key, naming the victim's key
    fields = {"Type": "Message", "Action": "Eval", "target": pid, "nonce": "1"}
    headers = hs_sign(user, fields, body=b"x", path=f"/{pid}~process@1.0/schedule")
    sig_input = headers["signature-input"]
    start = sig_input.index('keyid="') + len('keyid="')
    end = sig_input.index('"', start)
    headers["signature-input"] = sig_input[:start] + b64url_encode(victim.owner) + sig_input[end:]
    r = await ln.client.post(f"/{pid}~process@1.0/schedule", headers=headers, content=b"x")
    assert r.status_code == 400, r.text
    after = await ln.node.slot_info(pid)
    assert (after["current"], after["hash-chain"]) == chain
    ok = sign_message(user, pid, data=b"fine")
    r = await ln.client.post(f"/{pid}/schedule", content=ok.item.raw, headers=ANS)
    assert r.status_code == 200 and r.json()["slot"] == before["current"] + 1


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    data = b""
    async with asyncio.timeout(60):  # a safety net, not a synchronisation
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def test_slow_connections_are_closed_while_others_are_served(live: Live) -> None:
    ln = await live(header_timeout=1.0, body_timeout=1.0)
    host, port = "127.0.0.1", int(ln.url.rsplit(":", 1)[1])
    opened = []
    for i in range(30):
        reader, writer = await asyncio.open_connection(host, port)
        kind = i % 3
        if kind == 1:  # slowloris: a head that never ends
            writer.write(b"GET /~scheduler@1.0/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif kind == 2:  # a stalled body: 3 of 100 bytes
            writer.write(
                b"POST /~message@1.0/store HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/ans104\r\nContent-Length: 100\r\n\r\nabc"
            )
        await writer.drain()  # kind 0: idle, nothing sent
        opened.append((kind, reader, writer))

    probes = [(await ln.client.get("/~scheduler@1.0/status")).status_code for _ in range(5)]
    assert probes == [200] * 5  # answered while the 30 slow connections are open

    answers = await asyncio.gather(*(_until_closed(r) for _, r, _ in opened))
    for (kind, _, writer), data in zip(opened, answers, strict=True):
        writer.close()
        if kind == 2:  # the stalled body gets a JSON 408 before the close
            assert data.startswith(b"HTTP/1.1 408"), data[:100]
            assert b'"request-timeout"' in data
        else:
            assert data == b""  # closed without an answer
    assert (await ln.client.get("/~scheduler@1.0/status")).status_code == 200
    assert await ln.node.store.get_message("x" * 43) is None


async def test_oversized_header_block_is_431_json(live: Live) -> None:
    ln = await live(max_header=4096)
    r = await ln.client.get("/~scheduler@1.0/status", headers={"x-pad": "p" * 5000})
    assert r.status_code == 431 and r.json()["error"]["code"] == "headers-too-large"
    assert r.headers["connection"] == "close"
    assert (await ln.client.get("/~scheduler@1.0/status")).status_code == 200
