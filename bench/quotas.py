"""The cost of one quota charge: in-process ``Buckets.take`` next to ``SharedBuckets.take``.

A cluster's workers charge one shared table (quotas_shared.py): a hash, an
``flock`` pair and a read-modify-write of a mapped file per charge, against a
dict move for the single process.  Keys cycle over ``--keys`` signers, one
table of ``--table`` keys, as a node's default (100 000).

    .venv/bin/python bench/quotas.py -n 200000 --keys 1000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from aonode.quotas import Buckets, Rate, Taker
from aonode.quotas_shared import QuotaTable, create_table


def per_take(buckets: Taker, keys: list[str], n: int) -> float:
    """Seconds per take, ``n`` takes over ``keys`` (never refused: a huge burst)."""
    start = time.perf_counter()
    for i in range(n):
        buckets.take(keys[i % len(keys)])
    return (time.perf_counter() - start) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200_000, help="takes per kind")
    ap.add_argument("--keys", type=int, default=1000, help="distinct signers charged")
    ap.add_argument("--table", type=int, default=100_000, help="quota_keys of the table")
    args = ap.parse_args()
    rate = Rate(1e12, 1e9)
    keys = [f"signer-{i:06d}" for i in range(args.keys)]
    local = Buckets(rate, max_keys=args.table)
    with tempfile.TemporaryDirectory(prefix="aonode-bench-") as tmp:
        path = Path(tmp) / "quotas"
        create_table(path, args.table)
        table = QuotaTable(path)
        shared = table.buckets("messages", rate)
        per_take(local, keys, args.n // 10)  # warm up both
        per_take(shared, keys, args.n // 10)
        a = per_take(local, keys, args.n)
        b = per_take(shared, keys, args.n)
        table.close()
    print(f"Buckets.take        {a * 1e9:7.0f} ns")
    print(f"SharedBuckets.take  {b * 1e9:7.0f} ns  ({b / a:.1f}x, +{(b - a) * 1e9:.0f} ns)")


if __name__ == "__main__":
    main()
