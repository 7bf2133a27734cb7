"""Token buckets, the LRU bound and dry-run slots, driven by an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from aonode.config import NodeConfig, from_env
from aonode.errors import ConfigError, QuotaExceeded
from aonode.quotas import OFF, Buckets, Quotas, Rate, Slots, parse_rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate_with_retry_after() -> None:
    clock = Clock()
    b = Buckets(Rate(3, 0.5), max_keys=10, clock=clock)
    assert [b.take("a") for _ in range(3)] == [None, None, None]
    assert b.take("a") == 2  # one token takes 2 s at 0.5/s
    assert b.take("b") is None  # another key has its own bucket
    clock.now += 1.0
    assert b.take("a") == 1  # half a token so far; a refusal takes nothing
    clock.now += 1.0
    assert b.take("a") is None
    clock.now += 1e6
    assert [b.take("a") for _ in range(4)] == [None, None, None, 2]  # refills to the burst only


def test_cost_in_bytes_and_off() -> None:
    clock = Clock()
    b = Buckets(Rate(1000, 10), max_keys=10, clock=clock)
    assert b.take("a", 900) is None
    assert b.take("a", 200) == 10  # 100 bytes missing at 10/s
    assert Buckets(OFF, max_keys=1, clock=clock).take("a", 1e12) is None


def test_table_is_bounded_lru() -> None:
    clock = Clock()
    b = Buckets(Rate(1, 0.001), max_keys=3, clock=clock)
    for key in "abcdef":
        assert b.take(key) is None
    assert len(b) == 3
    assert b.take("f") is not None  # kept: still empty
    assert b.take("a") is None  # evicted long ago: starts again full


def test_parse_rate() -> None:
    assert parse_rate("500:20/s") == Rate(500, 20)
    assert parse_rate("50:6/min") == Rate(50, 0.1)
    assert parse_rate("1GiB:1GiB/day") == Rate(1024**3, 1024**3 / 86400)
    assert parse_rate("off") == OFF and OFF.off
    assert str(Rate(500, 20)) == "500:20/s" and str(Rate(50, 0.1)) == "50:6/min"
    for bad in ("", "500", "500:20", "500:20/week", "0:1/s", "x:1/s", "5:0/s"):
        with pytest.raises(ConfigError):
            parse_rate(bad)


def test_env_sets_limits() -> None:
    env = {
        "AONODE_QUOTA_MESSAGES": "10:1/s",
        "AONODE_QUOTA_SPAWNS": "off",
        "AONODE_MAX_HEADER": "8KiB",
        "AONODE_BODY_TIMEOUT": "2.5",
        "AONODE_DRYRUNS_PER_CLIENT": "2",
    }
    c = from_env(NodeConfig(), env).validated()
    assert c.quota_messages == Rate(10, 1) and c.quota_spawns == OFF
    assert c.max_header == 8192 and c.body_timeout == 2.5 and c.dryruns_per_client == 2
    with pytest.raises(ConfigError):
        from_env(NodeConfig(), {"AONODE_QUOTA_READS": "lots"})
    with pytest.raises(ConfigError):
        from_env(NodeConfig(), {"AONODE_HEADER_TIMEOUT": "0"}).validated()


def test_spawn_costs_a_spawn_and_a_message() -> None:
    clock = Clock()
    q = Quotas(
        messages=Rate(3, 1),
        spawns=Rate(1, 0.01),
        stored_bytes=Rate(100, 1),
        reads=Rate(1, 1),
        dryruns_per_client=1,
        dryruns_total=1,
        max_keys=10,
        clock=clock,
    )
    q.charge_message("s", spawn=True)
    with pytest.raises(QuotaExceeded) as spawn:
        q.charge_message("s", spawn=True)
    assert spawn.value.retry_after == 100 and "spawns by s" in spawn.value.message
    q.charge_message("s", spawn=False)
    with pytest.raises(QuotaExceeded):
        q.charge_store("t", 101)
    q.charge_store("t", 100)
    q.charge_read("1.2.3.4")
    with pytest.raises(QuotaExceeded):
        q.charge_read("1.2.3.4")


async def test_slots_per_key_and_total() -> None:
    slots = Slots(per_key=1, total=2)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def hold(key: str) -> None:
        async with slots.hold(key):
            inside.set()
            await release.wait()

    first = asyncio.create_task(hold("a"))
    await inside.wait()
    with pytest.raises(QuotaExceeded):
        async with slots.hold("a"):
            pass
    async with slots.hold("b"):  # another client still gets one
        with pytest.raises(QuotaExceeded):  # but the node is full
            async with slots.hold("c"):
                pass
    release.set()
    await first
    async with slots.hold("a"):  # released
        pass
