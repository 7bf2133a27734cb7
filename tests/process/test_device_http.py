"""The seed 003 test module, ported to the HTTP API, on the built-in aos module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aonode.codec import ans104
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
LUA = [("Execution-Device", "lua@5.3a")]


async def spawn_lua(ln: LiveNode, user: Wallet) -> str:
    proc = sign_process(user, ln.node.address, extra=LUA)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return proc.id


async def send(
    ln: LiveNode,
    user: Wallet,
    pid: str,
    data: str,
    action: str = "Eval",
    extra: list[tuple[str, str]] | None = None,
) -> int:
    m = sign_message(user, pid, data=data.encode(), action=action, extra=extra or [])
    r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    slot: int = r.json()["slot"]
    return slot


async def test_eval_x_times_two(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    for code in ("X = 10", "X = X * 2"):
        await send(ln, user_wallet, pid, code)
    last = await send(ln, user_wallet, pid, "return X")
    assert last == 3
    r = await ln.client.get(f"/{pid}~process@1.0/compute", params={"slot": last})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["process"] == pid and body["slot"] == 3
    assert body["results"]["data"] == "20"
    # the same value through HyperBEAM's path forms
    assert (await ln.client.get(f"/{pid}/compute=3/results/data")).text == "20"
    assert (await ln.client.get(f"/{pid}/compute&slot=3/results/data")).text == "20"
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "20"


async def test_counter_script_three_times(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    script = "Counter = Counter or 0\nCounter = Counter + 1\nreturn 'Count: ' .. Counter"
    for _ in range(3):
        last = await send(ln, user_wallet, pid, script)
    r = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert r.json()["results"]["data"] == "Count: 3"


async def test_now_dryrun_and_handlers(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    await send(ln, user_wallet, pid, "return 'hello'")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "hello"
    handler = (
        "Counter = 0\n"
        "Handlers.add('Increment', { Action = 'Increment' }, function(m)\n"
        "  Counter = Counter + 1\n"
        "end)"
    )
    await send(ln, user_wallet, pid, handler)
    for _ in range(2):
        await send(ln, user_wallet, pid, "", action="Increment")
    await send(ln, user_wallet, pid, "return Counter")
    now = (await ln.client.get(f"/{pid}~process@1.0/now")).json()
    assert now["results"]["data"] == "2"
    slot_before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    # a dry run of `return 99` answers and changes neither state nor schedule
    dry = ans104.sign(user_wallet, data=b"return 99", tags=[("Action", "Eval")])
    r = await ln.client.post(f"/{pid}~process@1.0/compute", content=dry.raw, headers=ANS)
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == "99"
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == slot_before
    await send(ln, user_wallet, pid, "return Counter")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "2"


async def test_send_reaches_the_outbox(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    slot = await send(
        ln, user_wallet, pid, "Send({ Target = ao.id, Action = 'Ping', Data = 'hi' })"
    )
    outbox = (await ln.client.get(f"/{pid}/compute", params={"slot": slot})).json()
    messages = outbox["results"]["outbox"]
    assert len(messages) == 1
    assert messages[0]["Target"] == pid and messages[0]["Data"] == "hi"
    tags = {t["name"]: t["value"] for t in messages[0]["Tags"]}
    assert tags["Action"] == "Ping"
    r = await ln.client.get(f"/{pid}/compute=1/results/outbox/1/Data")
    assert r.text == "hi"


async def test_compute_bad_input(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    other = sign_process(user_wallet, ln.node.address, data=b"plain")  # never spawned
    cases = [
        (f"/{other.id}/compute?slot=0", 404, "unknown-process"),
        (f"/{pid}/compute?slot=abc", 400, "bad-parameter"),
        (f"/{pid}/compute?slot=-1", 400, "bad-parameter"),
        (f"/{pid}/compute?slot=7", 404, "slot-not-assigned"),
    ]
    for path, status, code in cases:
        r = await ln.client.get(path)
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"]["code"] == code
    slot = await send(ln, user_wallet, pid, "this is not lua (")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": slot})
    assert r.status_code == 200 and r.json()["results"]["error"]
    after = await send(ln, user_wallet, pid, "return 1 + 1")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": after})
    assert r.json()["results"]["data"] == "2"


async def test_unsupported_execution_device_is_refused_at_spawn(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address, extra=[("Execution-Device", "evm@1.0")])
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unsupported-execution-device"
    assert proc.id not in (await ln.client.get("/~scheduler@1.0/status")).json()["processes"]
    plain = sign_process(user_wallet, ln.node.address, data=b"schedule only")
    await ln.client.post("/~scheduler@1.0/schedule", content=plain.item.raw, headers=ANS)
    r = await ln.client.get(f"/{plain.id}/compute?slot=0")
    assert r.status_code == 400 and r.json()["error"]["code"] == "no-execution-device"


async def test_patch_messages_update_the_process_state(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    stack = [("Execution-Device", "stack@1.0"), ("Execution-Stack", "lua@5.3a, patch@1.0")]
    proc = sign_process(user_wallet, ln.node.address, extra=stack)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    pid = proc.id
    slot = await send(
        ln,
        user_wallet,
        pid,
        "Send({ Target = ao.id, method = 'PATCH', x = 'banana' })\n"
        "Send({ Target = ao.id, Action = 'Real' })",
    )
    body = (await ln.client.get(f"/{pid}/compute", params={"slot": slot})).json()
    assert [m.get("Action") for m in body["results"]["outbox"]] == ["Real"]  # PATCH not sent
    assert len(body["results"]["patches"]) == 1
    assert (await ln.client.get(f"/{pid}/now/x")).text == "banana"
    await send(ln, user_wallet, pid, "Send({ Target = ao.id, method = 'PATCH', x = 'kiwi' })")
    assert (await ln.client.get(f"/{pid}/now/x")).text == "kiwi"
    assert (await ln.client.get(f"/{pid}/compute={slot}/x")).text == "banana"
    # without patch@1.0 in the stack a PATCH message is an ordinary outbox message
    plain = await spawn_lua(ln, user_wallet)
    s2 = await send(ln, user_wallet, plain, "Send({ Target = ao.id, method = 'PATCH', x = 'y' })")
    out = (await ln.client.get(f"/{plain}/compute", params={"slot": s2})).json()["results"]
    assert len(out["outbox"]) == 1 and (await ln.client.get(f"/{plain}/now/x")).status_code == 404
