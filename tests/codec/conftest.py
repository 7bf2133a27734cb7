"""Signers for the codec tests: one wallet of each ANS-104 signature type."""

from __future__ import annotations

import pytest

from aonode import wallet as wallet_mod
from aonode.wallet import Wallet


@pytest.fixture(scope="session")
def rsa_signer() -> Wallet:
    return wallet_mod.generate("rsa")


@pytest.fixture(scope="session")
def ed_signer() -> Wallet:
    return wallet_mod.generate("ed25519")


@pytest.fixture(params=["rsa_signer", "ed_signer"])
def signer(request: pytest.FixtureRequest) -> Wallet:
    w: Wallet = request.getfixturevalue(request.param)
    return w
