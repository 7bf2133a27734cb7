"""Instrumentation: one interface, registered once; a failing instrument never breaks the node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aonode.instrument import Instrument, Instruments
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}


class Counting(Instrument):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def verified(self, seconds: float) -> None:
        self.calls.append("verified")

    def signed(self, seconds: float) -> None:
        self.calls.append("signed")

    def http_request(self, method: str, path: str, status: int) -> None:
        self.calls.append(f"{method} {status}")


class Broken(Instrument):
    def signed(self, seconds: float) -> None:
        raise RuntimeError("an instrument's own bug")


def test_a_failing_instrument_is_removed_and_the_others_keep_hearing() -> None:
    hub, good, bad = Instruments(), Counting(), Broken()
    hub.register(bad)
    hub.register(good)
    hub.signed(0.1)  # bad raises: removed, good still called
    hub.signed(0.2)
    assert good.calls == ["signed", "signed"]
    assert hub.active == (good,)
    hub.committed(3, 0.01)  # a hook nobody overrides is a no-op
    hub.unregister(good)
    hub.signed(0.3)
    assert good.calls == ["signed", "signed"]


async def test_an_instrument_registered_on_a_live_node_hears_every_part(
    live: Callable[..., Awaitable[LiveNode]], user_wallet: Wallet
) -> None:
    ln = await live()
    seen, broken = Counting(), Broken()
    ln.node.instruments.register(broken)
    ln.node.instruments.register(seen)
    proc = sign_process(user_wallet, ln.node.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    msg = sign_message(user_wallet, proc.id, data=b"1")
    r = await ln.client.post(f"/{proc.id}~process@1.0/schedule", content=msg.item.raw, headers=ANS)
    assert r.status_code == 200, r.text  # the broken instrument did not break scheduling
    assert seen.calls.count("signed") == 2 and "verified" in seen.calls
    assert "POST 200" in seen.calls
    assert broken not in ln.node.instruments.active
    metrics = (await ln.client.get("/metrics")).text  # the metrics instrument still counts
    assert 'aonode_signature_seconds_count{op="sign"} 2.0' in metrics
