"""Interop with arbundles (@dha-team/arbundles), the ANS-104 library AO clients use.

Both directions, both signature types: items arbundles signs parse and verify
here with arbundles' own id; items signed here verify in arbundles with the id
it computes; tampered items fail on both sides; JWK files move between them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import InvalidSignature
from aonode.wallet import Wallet

pytestmark = pytest.mark.interop

RunNode = Callable[..., Any]

# arbundles takes the anchor as a string whose UTF-8 bytes are the 32-byte anchor.
ANCHOR_TEXT = "anchor-0123456789abcdefghijklmno"
SPECS: list[dict[str, Any]] = [
    {
        "data": b"hello from arbundles",
        "tags": [
            ("Content-Type", "text/plain"),
            ("App-Name", "aonode-interop"),
            ("Unicode", "héllo ✓ 你好 🙂"),
            ("Empty", ""),
        ],
        "target": bytes(range(32)),
        "anchor": ANCHOR_TEXT.encode(),
    },
    {"data": b"", "tags": [], "target": b"", "anchor": b""},
    {"data": bytes(range(256)) * 40, "tags": [("Only", "one")], "target": b"", "anchor": b""},
]


def _js_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": b64url_encode(spec["data"]),
        "tags": [{"name": n, "value": v} for n, v in spec["tags"]],
        "target": b64url_encode(spec["target"]),
        "anchor": spec["anchor"].decode(),
    }


def _sign_in_arbundles(run_node: RunNode, signer: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = run_node(
        "arbundles_sign.js", {"signer": signer, "items": [_js_spec(s) for s in SPECS]}
    )
    return out


def _verify_in_arbundles(run_node: RunNode, raws: list[bytes]) -> list[dict[str, Any]]:
    out = run_node("arbundles_verify.js", {"items": [b64url_encode(r) for r in raws]})
    results: list[dict[str, Any]] = out["results"]
    return results


@pytest.fixture(scope="session")
def rsa_w() -> Wallet:
    return wallet_mod.generate("rsa")


@pytest.fixture(scope="session")
def ed_w() -> Wallet:
    return wallet_mod.generate("ed25519")


@pytest.fixture(scope="session", params=["rsa", "ed25519"])
def arbundles_made(request: pytest.FixtureRequest, run_node: RunNode) -> dict[str, Any]:
    """Items signed by arbundles with a key Node generated (ArweaveSigner / SolanaSigner)."""
    kind: str = request.param
    out = _sign_in_arbundles(run_node, {"kind": f"{kind}-new"})
    out["signature_type"] = 1 if kind == "rsa" else 2
    return out


# -- arbundles -> Python --------------------------------------------------------------


def test_arbundles_items_parse_and_verify_with_the_same_id(arbundles_made: dict[str, Any]) -> None:
    node_wallet = wallet_mod.from_jwk(arbundles_made["jwk"])  # Node's JWK loads here too
    for spec, made in zip(SPECS, arbundles_made["items"], strict=True):
        item = ans104.parse_verified(b64url_decode(made["raw"]))
        assert item.id == made["id"]
        assert item.signature_type == arbundles_made["signature_type"]
        assert item.owner == node_wallet.owner
        assert item.owner_address == node_wallet.address
        assert item.tags == tuple(spec["tags"])
        assert (item.data, item.target, item.anchor) == (
            spec["data"],
            spec["target"],
            spec["anchor"],
        )


def _flip(raw: bytes, offset: int, mask: int = 0x01) -> bytes:
    return raw[:offset] + bytes([raw[offset] ^ mask]) + raw[offset + 1 :]


def test_tampered_arbundles_items_are_rejected_by_both(
    arbundles_made: dict[str, Any], run_node: RunNode
) -> None:
    raw = b64url_decode(arbundles_made["items"][0]["raw"])
    item = ans104.parse(raw)
    sig_end = 2 + len(item.signature)
    tampered = {
        "data": _flip(raw, len(raw) - 1),
        "tag": _flip(raw, raw.index(b"aonode-interop"), 0x20),  # a -> A, still UTF-8
        "signature": _flip(raw, 2 + 7),
        "owner": _flip(raw, sig_end + 9),
    }
    for field, bad in tampered.items():
        with pytest.raises(InvalidSignature):
            ans104.parse_verified(bad)
        assert not ans104.parse(bad).verify(), field
    verdicts = _verify_in_arbundles(run_node, list(tampered.values()))
    assert [v["valid"] for v in verdicts] == [False] * len(tampered)


def test_arbundles_rsa_uses_the_maximum_pss_salt(run_node: RunNode) -> None:
    """Why wallet.verify must auto-detect the salt: Node signs with 478 bytes, not 32."""
    out = _sign_in_arbundles(run_node, {"kind": "rsa-new"})
    item = ans104.parse(b64url_decode(out["items"][1]["raw"]))
    key = wallet_mod.from_jwk(out["jwk"])
    assert isinstance(key, wallet_mod.RSAWallet)
    public = key.private_key.public_key()

    def verifies_with(salt: int) -> bool:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
        try:
            public.verify(item.signature, item.signature_data(), pss, hashes.SHA256())
        except Exception:
            return False
        return True

    assert verifies_with(512 - 32 - 2)
    assert not verifies_with(32)
    assert item.verify()


# -- Python -> arbundles --------------------------------------------------------------


@pytest.mark.parametrize("which", ["rsa_w", "ed_w"])
def test_python_items_verify_in_arbundles_with_its_id(
    request: pytest.FixtureRequest, run_node: RunNode, which: str
) -> None:
    w: Wallet = request.getfixturevalue(which)
    specs = [
        *SPECS,
        # Python accepts any 32 bytes as anchor, not just text.
        {"data": b"x", "tags": [("A", "b")], "target": b"\xff" * 32, "anchor": b"\x00\xfe" * 16},
    ]
    items = [
        ans104.sign(w, data=s["data"], tags=s["tags"], target=s["target"], anchor=s["anchor"])
        for s in specs
    ]
    verdicts = _verify_in_arbundles(run_node, [i.raw for i in items])
    for spec, item, verdict in zip(specs, items, verdicts, strict=True):
        assert verdict["valid"] is True, verdict
        assert verdict["id"] == item.id
        assert verdict["signature_type"] == w.signature_type
        assert b64url_decode(verdict["owner"]) == w.owner
        assert b64url_decode(verdict["target"]) == spec["target"]
        assert b64url_decode(verdict["anchor"]) == spec["anchor"]
        assert [(t["name"], t["value"]) for t in verdict["tags"]] == spec["tags"]
        assert b64url_decode(verdict["data"]) == spec["data"]


def test_python_saved_wallets_sign_in_arbundles(
    rsa_w: Wallet, ed_w: Wallet, run_node: RunNode, tmp_path: Path
) -> None:
    for name, w in (("rsa", rsa_w), ("ed25519", ed_w)):
        path = tmp_path / f"{name}.json"
        wallet_mod.save(w, path)
        out = _sign_in_arbundles(run_node, {"kind": f"{name}-jwk", "jwk_path": str(path)})
        for made in out["items"]:
            item = ans104.parse_verified(b64url_decode(made["raw"]))
            assert item.id == made["id"]
            assert item.owner == w.owner
            assert item.owner_address == w.address
