"""The soak (tests/soak.py): ``AONODE_SOAK_ROUNDS`` kill -9 restarts of a real node
under concurrent scheduling and computing; nothing acknowledged is lost, the chain
verifies, and the state equals a fresh replay.

``scripts/test`` runs 20 rounds; the default here is 3.  ``bench/soak.py`` runs
100 or more and reports the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aonode.wallet import Wallet
from tests.soak import run_soak

pytestmark = pytest.mark.crash
ROUNDS = int(os.environ.get("AONODE_SOAK_ROUNDS", "3"))


@pytest.mark.parametrize("workers", [1, 2])
async def test_soak_kill9_under_load_loses_nothing(
    tmp_path: Path, user_wallet: Wallet, workers: int
) -> None:
    """``workers`` 2: the same rounds against ``serve --workers 2`` (the two
    processes' owners are whichever workers their ids shard to)."""
    report = await run_soak(tmp_path / "node", user_wallet, ROUNDS, workers=workers)
    assert report.rounds == ROUNDS
    assert report.lost == 0
    assert report.acknowledged >= ROUNDS  # every round acknowledged work before its kill
    assert report.computes > 0  # and computed while it was scheduling
