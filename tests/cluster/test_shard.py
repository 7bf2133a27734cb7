"""shard_of: stable across processes, in range, spread over every worker."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aonode.cluster.shard import shard_of

ids = st.text(min_size=1, max_size=64)


@given(ids, st.integers(min_value=1, max_value=64))
def test_in_range_and_deterministic(pid: str, n: int) -> None:
    i = shard_of(pid, n)
    assert 0 <= i < n
    assert shard_of(pid, n) == i


@given(ids)
def test_one_worker_owns_everything(pid: str) -> None:
    assert shard_of(pid, 1) == 0


@given(ids, st.integers(min_value=2, max_value=64))
def test_is_sha256_of_the_id(pid: str, n: int) -> None:
    # the documented definition, so any other implementation (another language,
    # a future refactor) puts every process on the same worker
    digest = hashlib.sha256(pid.encode()).digest()
    assert shard_of(pid, n) == int.from_bytes(digest[:8], "big") % n


def test_same_answer_in_another_interpreter() -> None:
    # str hashes are salted per process; shard_of must not be
    pids = [f"process-{k}" for k in range(50)]
    here = [shard_of(p, 7) for p in pids]
    code = f"from aonode.cluster.shard import shard_of; print([shard_of(p, 7) for p in {pids!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": ":".join(sys.path)},
    )
    assert out.stdout.strip() == str(here)


def test_known_vectors() -> None:
    pid = "0" * 43
    digest = hashlib.sha256(pid.encode()).digest()
    assert shard_of(pid, 2) == int.from_bytes(digest[:8], "big") % 2
    assert shard_of("", 3) == int.from_bytes(hashlib.sha256(b"").digest()[:8], "big") % 3


@pytest.mark.parametrize("n", [2, 3, 4, 8, 32])
def test_every_worker_gets_a_fair_share(n: int) -> None:
    # 43-character ids like AO's; a deterministic set, so no flakiness
    pids = [hashlib.sha256(str(k).encode()).hexdigest()[:43] for k in range(400 * n)]
    counts = [0] * n
    for p in pids:
        counts[shard_of(p, n)] += 1
    assert min(counts) > 300 and max(counts) < 500, counts


def test_no_workers_is_an_error() -> None:
    with pytest.raises(ValueError):
        shard_of("x", 0)
