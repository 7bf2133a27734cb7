"""``/~scheduler@1.0/status`` of a cluster: runtimes, push jobs and uploads of every worker."""

from __future__ import annotations

from typing import Any

import pytest

from aonode.cluster.shard import shard_of
from aonode.cluster.status import merge, share_of
from aonode.wallet import Wallet
from tests.cluster.conftest import Cluster
from tests.cluster.test_routing import post
from tests.cluster.test_usecases import get, spawn_pair
from tests.conftest import sign_message


def _pid(owner: int, n: int = 2) -> str:
    """A process id worker ``owner`` of ``n`` owns."""
    for k in range(1000):
        pid = f"{k:043d}"
        if shard_of(pid, n) == owner:
            return pid
    raise AssertionError("no id found")


def test_merge_takes_runtimes_from_their_owner_and_sums_jobs_and_uploads() -> None:
    a, b = _pid(0), _pid(1)
    upload = {"target": "http://ar", "pending": 2, "processes-behind": 1, "uploaded": 5}
    shares: dict[int, dict[str, Any]] = {
        0: {
            "workers": {a: {"at-slot": 3}, b: {"at-slot": 0}},  # a stale copy of b
            "push-jobs": 2,
            "upload": {**upload, "bundles": 1, "last-tx": None, "last-error": None},
        },
        1: {
            "workers": {b: {"at-slot": 7}},
            "push-jobs": 3,
            "upload": {**upload, "bundles": 4, "last-tx": "tx1", "last-error": "down"},
        },
    }
    local = {"address": "me", "processes": [a, b], **shares[0]}
    got = merge(local, shares, here=0, of=2)
    assert got["address"] == "me" and got["processes"] == [a, b]
    assert got["workers"] == {a: {"at-slot": 3}, b: {"at-slot": 7}}
    assert got["push-jobs"] == 5
    up = got["upload"]
    assert (up["pending"], up["processes-behind"], up["uploaded"], up["bundles"]) == (4, 2, 10, 5)
    assert (up["last-tx"], up["last-error"]) == ("tx1", "down")  # the only ones known
    assert got["cluster"] == {"answered": 2, "of": 2, "here": 0}
    assert share_of(local) == shares[0]


def test_merge_without_uploads_keeps_none() -> None:
    shares: dict[int, dict[str, Any]] = {0: {"workers": {}, "push-jobs": 0, "upload": None}}
    got = merge({"upload": None}, shares, here=0, of=3)
    assert got["upload"] is None and got["cluster"] == {"answered": 1, "of": 3, "here": 0}


@pytest.mark.crash
async def test_every_worker_answers_with_every_loaded_runtime(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url = cluster.url
    procs = await spawn_pair(cluster, user_wallet)  # procs[i] is owned by worker i
    for proc in procs:
        m = sign_message(user_wallet, proc.id, data=b"return 1", action="Eval")
        assert (await post(url, f"/{proc.id}/schedule", m)).status_code == 200
        assert (await get(url, f"/{proc.id}/now")).json()["slot"] == 1  # loads it on its owner
    seen: set[int] = set()
    for _ in range(64):  # fresh connections until both workers have answered (2⁻⁶³ to fail)
        status = (await get(url, "/~scheduler@1.0/status")).json()
        assert status["cluster"]["answered"] == 2 and status["cluster"]["of"] == 2, status
        seen.add(status["cluster"]["here"])
        assert {p.id for p in procs} <= set(status["workers"]), status["workers"]
        for proc in procs:
            assert status["workers"][proc.id]["at-slot"] == 1, status["workers"]
        if seen == {0, 1}:
            break
    assert seen == {0, 1}
