"""SharedBuckets: one table of token buckets for every worker of a cluster.

Real OS processes map one real file and race on one key; what they are granted
in total must stay within one bucket's bound, as if a single process charged.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aonode.errors import ConfigError
from aonode.http.server import free_port
from aonode.quotas import OFF, Buckets, Quotas, Rate
from aonode.quotas_shared import (
    WINDOW,
    QuotaTable,
    create_table,
    shared_factory,
    table_size,
)
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.test_crash import start_node, stop_node

SRC = str(Path(__file__).resolve().parent.parent / "src")

# one worker: take 1 token for "signer" `n` times; print how many were granted.
# A frozen clock: no refill at all, so the whole node may grant exactly `burst`.
HAMMER = """
import sys, time
from pathlib import Path
from aonode.quotas import Rate
from aonode.quotas_shared import QuotaTable
path, burst, per_second, n, frozen = sys.argv[1:6]
clock = (lambda: 1000.0) if frozen == "1" else time.monotonic
table = QuotaTable(Path(path))
buckets = table.buckets("messages", Rate(float(burst), float(per_second)), clock)
sys.stdin.readline()  # both ready: go together
print(sum(1 for _ in range(int(n)) if buckets.take("signer") is None))
"""


def hammer(path: Path, *, burst: int, per_second: float, n: int, frozen: bool) -> int:
    """Two processes charging one key at once; the grants of both."""
    args = [path, burst, per_second, n, int(frozen)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HAMMER, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PYTHONPATH": SRC},
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    granted = 0
    for proc in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0
        granted += int(out)
    return granted


def test_two_processes_with_a_frozen_clock_are_granted_exactly_the_burst(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quotas"
    create_table(path, 1000)
    # each alone would take all 3000; together (per-process buckets: 6000) only 3000
    assert hammer(path, burst=3000, per_second=1.0, n=6000, frozen=True) == 3000


def test_two_processes_are_granted_at_most_burst_plus_rate_times_elapsed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quotas"
    create_table(path, 1000)
    start = time.monotonic()
    granted = hammer(path, burst=1000, per_second=50.0, n=4000, frozen=False)
    elapsed = time.monotonic() - start
    assert 1000 <= granted <= 1000 + 50.0 * elapsed


def test_the_table_outlives_a_process_and_refuses_with_retry_after(tmp_path: Path) -> None:
    """A worker restarted (a new QuotaTable on the file) finds the bucket spent."""
    path = tmp_path / "quotas"
    create_table(path, 100)
    now = [0.0]
    rate = Rate(3, 0.5)
    first = QuotaTable(path).buckets("spawns", rate, lambda: now[0])
    assert [first.take("a") for _ in range(4)] == [None, None, None, 2]
    again = QuotaTable(path).buckets("spawns", rate, lambda: now[0])
    assert again.take("a") == 2  # as Buckets: 1 token missing at 0.5/s
    assert again.take("b") is None  # another signer goes on
    assert again.take("a", cost=10) == 6  # above the burst: waits for a full bucket
    now[0] = 2.0
    assert again.take("a") is None  # refilled 1 token in 2 s
    assert QuotaTable(path).buckets("messages", rate, lambda: now[0]).take("a") is None


def test_same_answers_as_the_in_process_buckets(tmp_path: Path) -> None:
    path = tmp_path / "quotas"
    create_table(path, 100)
    now = [0.0]
    rate = Rate(5, 2.0)
    shared = QuotaTable(path).buckets("reads", rate, lambda: now[0])
    local = Buckets(rate, max_keys=100, clock=lambda: now[0])
    script = [("a", 1.0), ("a", 3.0), ("b", 5.0), ("a", 2.0), ("a", 1.0), ("b", 1.0)]
    for step, (key, cost) in enumerate(script * 3):
        now[0] = step * 0.3
        assert shared.take(key, cost) == local.take(key, cost), step


def test_a_full_window_evicts_the_key_idle_longest_and_stays_bounded(tmp_path: Path) -> None:
    """``WINDOW`` entries in all: every key shares the one window."""
    path = tmp_path / "quotas"
    create_table(path, 1)
    table = QuotaTable(path)
    assert table.entries == WINDOW
    now = [0.0]
    buckets = table.buckets("messages", Rate(1, 1e-6), lambda: now[0])
    for i in range(WINDOW):
        now[0] = float(i)
        assert buckets.take(f"k{i}") is None
        assert buckets.take(f"k{i}") is not None  # spent
    now[0] = 100.0
    assert buckets.take("new") is None  # evicts k0, idle longest
    assert buckets.take("k1") is not None  # still remembered: spent
    assert buckets.take("k0") is None  # evicted: starts again with a full bucket
    for i in range(1000):
        now[0] = 200.0 + i
        buckets.take(f"stranger{i}")
    assert table.used("messages") == WINDOW
    assert table.used("spawns") == 0
    assert path.stat().st_size == table_size(1)


def test_a_table_of_many_keys_keeps_each_apart(tmp_path: Path) -> None:
    path = tmp_path / "quotas"
    create_table(path, 4096)
    buckets = QuotaTable(path).buckets("messages", Rate(1, 1e-6), lambda: 0.0)
    keys = [f"signer-{i}" for i in range(1000)]  # well under the capacity
    assert all(buckets.take(k) is None for k in keys)
    assert all(buckets.take(k) is not None for k in keys)


def test_an_off_quota_takes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "quotas"
    create_table(path, 16)
    table = QuotaTable(path)
    off = table.buckets("stored_bytes", OFF)
    assert all(off.take("a", cost=1e12) is None for _ in range(100))
    assert table.used("stored_bytes") == 0


def test_quotas_over_a_shared_table_charge_the_node_once(tmp_path: Path) -> None:
    """Two Quotas (two workers) over one table: a signer's 3-message burst in all."""
    path = tmp_path / "quotas"
    create_table(path, 64)
    clock = lambda: 5.0  # noqa: E731
    workers = [
        Quotas(
            messages=Rate(3, 1e-3),
            spawns=OFF,
            stored_bytes=OFF,
            reads=OFF,
            dryruns_per_client=0,
            dryruns_total=0,
            max_keys=64,
            buckets=shared_factory(QuotaTable(path), clock),
        )
        for _ in range(2)
    ]
    workers[0].charge_message("s", spawn=False)
    workers[1].charge_message("s", spawn=False)
    workers[0].charge_message("s", spawn=False)
    with pytest.raises(Exception, match="quota exceeded") as refused:
        workers[1].charge_message("s", spawn=False)
    assert getattr(refused.value, "retry_after", 0) >= 1
    workers[1].charge_message("other", spawn=False)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"AOQUOTA1"),
        lambda p: p.write_bytes(b"x" * table_size(16)),
        lambda p: p.write_bytes(p.read_bytes()[:-1]),
        lambda p: p.unlink(),
    ],
    ids=["empty", "short-header", "bad-magic", "truncated", "missing"],
)
def test_a_damaged_table_is_refused_clearly_and_create_makes_a_fresh_one(
    tmp_path: Path, damage: object
) -> None:
    path = tmp_path / "quotas"
    create_table(path, 16)
    assert callable(damage)
    damage(path)
    with pytest.raises(ConfigError, match="quota table"):
        QuotaTable(path)
    create_table(path, 16)  # the supervisor, at start: whatever was there is replaced
    assert QuotaTable(path).buckets("reads", Rate(1, 1)).take("a") is None


async def test_a_cluster_of_two_workers_holds_one_signer_to_its_quota(
    tmp_path: Path, user_wallet: Wallet, ed_wallet: Wallet
) -> None:
    """``serve --workers 2``, a burst of 20 messages: a signer posting over fresh
    connections (the kernel spreads them over both workers) gets 20 in all, not
    20 per worker; another signer goes on."""
    quotas = {
        "AONODE_QUOTA_MESSAGES": "20:1/hour",
        "AONODE_QUOTA_SPAWNS": "off",
        "AONODE_QUOTA_READS": "off",
    }
    ans = {"content-type": "application/ans104"}
    node, url, address = await start_node(
        tmp_path / "node", free_port("127.0.0.1"), env=quotas, workers=2
    )
    try:
        fresh = httpx.Limits(max_keepalive_connections=0)  # one connection per request
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=fresh) as client:
            p = sign_process(ed_wallet, address)
            r = await client.post("/~scheduler@1.0/schedule", content=p.item.raw, headers=ans)
            assert r.status_code == 200, r.text
            statuses = []
            for _ in range(50):
                m = sign_message(user_wallet, p.id)
                r = await client.post(f"/{p.id}/schedule", content=m.item.raw, headers=ans)
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) >= 1
                    assert "quota" in r.text
            assert statuses == [200] * 20 + [429] * 30
            m = sign_message(ed_wallet, p.id)
            r = await client.post(f"/{p.id}/schedule", content=m.item.raw, headers=ans)
            assert r.status_code == 200, r.text
    finally:
        await stop_node(node)
