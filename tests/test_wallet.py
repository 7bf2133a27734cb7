"""Wallets: owners and addresses, signing, verification, JWK files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from aonode import wallet as wallet_mod
from aonode.errors import ConfigError
from aonode.wallet import Ed25519Wallet, RSAWallet, Wallet

# RFC 8032 §7.1, TEST 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
    "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@pytest.fixture(scope="session")
def rsa_w() -> RSAWallet:
    w = wallet_mod.generate("rsa")
    assert isinstance(w, RSAWallet)
    return w


@pytest.fixture(scope="session")
def ed_w() -> Ed25519Wallet:
    w = wallet_mod.generate("ed25519")
    assert isinstance(w, Ed25519Wallet)
    return w


@pytest.fixture(params=["rsa_w", "ed_w"])
def any_w(request: pytest.FixtureRequest) -> Wallet:
    w: Wallet = request.getfixturevalue(request.param)
    return w


# -- identity -----------------------------------------------------------------------


def test_rsa_owner_is_the_512_byte_modulus(rsa_w: RSAWallet) -> None:
    numbers = rsa_w.private_key.public_key().public_numbers()
    assert rsa_w.signature_type == 1
    assert numbers.e == 65537 and numbers.n.bit_length() == 4096
    assert rsa_w.owner == numbers.n.to_bytes(512, "big")
    assert unb64(rsa_w.to_jwk()["n"]) == rsa_w.owner


def test_address_is_b64url_sha256_of_owner(any_w: Wallet) -> None:
    expected = b64(hashlib.sha256(any_w.owner).digest())
    assert any_w.address == expected == wallet_mod.address_of(any_w.owner)
    assert len(any_w.address) == 43


def test_ed25519_matches_rfc8032_vector() -> None:
    w = wallet_mod.from_jwk({"kty": "OKP", "crv": "Ed25519", "d": b64(RFC8032_SECRET)})
    assert w.signature_type == 2
    assert w.owner == RFC8032_PUBLIC
    assert w.sign(b"") == RFC8032_SIGNATURE
    assert wallet_mod.verify(2, RFC8032_PUBLIC, b"", RFC8032_SIGNATURE)
    assert w.to_jwk() == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(RFC8032_PUBLIC),
        "d": b64(RFC8032_SECRET),
    }


def test_repr_leaks_no_private_key(any_w: Wallet) -> None:
    text = repr(any_w)
    assert any_w.to_jwk()["d"] not in text
    assert any_w.address in text


def test_wallets_compare_by_identity_not_object(any_w: Wallet) -> None:
    again = wallet_mod.from_jwk(any_w.to_jwk())
    assert again == any_w and hash(again) == hash(any_w)


# -- signing and verification -------------------------------------------------------


def test_sign_verifies_and_binds_the_message(any_w: Wallet) -> None:
    sig = any_w.sign(b"message")
    assert len(sig) == (512 if any_w.signature_type == 1 else 64)
    assert wallet_mod.verify(any_w.signature_type, any_w.owner, b"message", sig)
    assert not wallet_mod.verify(any_w.signature_type, any_w.owner, b"messagf", sig)
    other_type = 2 if any_w.signature_type == 1 else 1
    assert not wallet_mod.verify(other_type, any_w.owner, b"message", sig)


def test_rsa_signs_pss_sha256_with_a_32_byte_salt(rsa_w: RSAWallet) -> None:
    sig = rsa_w.sign(b"m")
    strict = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    rsa_w.private_key.public_key().verify(sig, b"m", strict, hashes.SHA256())


@pytest.mark.parametrize(
    "salt",
    [0, 32, padding.PSS.MAX_LENGTH],
    ids=["salt-0", "salt-32 (Arweave node, HyperBEAM, browsers)", "max salt (Node arbundles)"],
)
def test_rsa_verify_accepts_every_salt_length_arweave_signers_use(
    rsa_w: RSAWallet, salt: int
) -> None:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    sig = rsa_w.private_key.sign(b"m", pss, hashes.SHA256())
    assert wallet_mod.verify(1, rsa_w.owner, b"m", sig)


def test_rsa_verify_rejects_pkcs1v15_and_other_hashes(rsa_w: RSAWallet) -> None:
    key = rsa_w.private_key
    pkcs = key.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    sha512 = key.sign(
        b"m", padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=32), hashes.SHA512()
    )
    assert not wallet_mod.verify(1, rsa_w.owner, b"m", pkcs)
    assert not wallet_mod.verify(1, rsa_w.owner, b"m", sha512)


BAD_VERIFY_INPUTS = [
    ("unknown type", 3, b"\x01" * 32, b"\x00" * 64),
    ("negative type", -1, b"\x01" * 32, b"\x00" * 64),
    ("rsa empty", 1, b"", b""),
    ("rsa zero modulus", 1, bytes(512), bytes(512)),
    ("rsa even modulus", 1, b"\xff" * 511 + b"\xfe", b"\x01" * 512),
    ("rsa short signature", 1, b"\xff" * 512, b"\x01" * 511),
    ("rsa signature over modulus", 1, b"\x80" + bytes(510) + b"\x01", b"\xff" * 512),
    ("rsa owner too long", 1, b"\xff" * 513, b"\x01" * 512),
    ("ed zero key", 2, bytes(32), bytes(64)),
    ("ed short owner", 2, b"\x01" * 31, bytes(64)),
    ("ed short signature", 2, RFC8032_PUBLIC, RFC8032_SIGNATURE[:63]),
    ("ed all-ones key", 2, b"\xff" * 32, b"\xff" * 64),
]


@pytest.mark.parametrize(
    ("sig_type", "owner", "signature"),
    [c[1:] for c in BAD_VERIFY_INPUTS],
    ids=[c[0] for c in BAD_VERIFY_INPUTS],
)
def test_verify_answers_false_and_never_raises(
    sig_type: int, owner: bytes, signature: bytes
) -> None:
    assert wallet_mod.verify(sig_type, owner, b"message", signature) is False


def test_signing_from_several_threads_at_once(rsa_w: RSAWallet) -> None:
    messages = [f"message {i}".encode() for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        signatures = list(pool.map(rsa_w.sign, messages))
    assert all(
        wallet_mod.verify(1, rsa_w.owner, m, s) for m, s in zip(messages, signatures, strict=True)
    )


# -- JWK ------------------------------------------------------------------------------


def test_rsa_jwk_has_the_arweave_members(rsa_w: RSAWallet) -> None:
    jwk = rsa_w.to_jwk()
    assert set(jwk) == {"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"}
    assert jwk["kty"] == "RSA" and jwk["e"] == "AQAB"
    assert all("=" not in v for v in jwk.values())
    priv = rsa_w.private_key.private_numbers()
    assert int.from_bytes(unb64(jwk["p"]), "big") * int.from_bytes(unb64(jwk["q"]), "big") == (
        priv.public_numbers.n
    )


def test_jwk_round_trip_keeps_the_key(any_w: Wallet) -> None:
    again = wallet_mod.from_jwk(any_w.to_jwk())
    assert type(again) is type(any_w) and again.owner == any_w.owner
    assert wallet_mod.verify(again.signature_type, any_w.owner, b"m", again.sign(b"m"))


def test_rsa_jwk_without_crt_members_loads(rsa_w: RSAWallet) -> None:
    jwk = {k: v for k, v in rsa_w.to_jwk().items() if k in ("kty", "n", "e", "d")}
    again = wallet_mod.from_jwk(jwk)
    assert again.owner == rsa_w.owner
    assert wallet_mod.verify(1, rsa_w.owner, b"m", again.sign(b"m"))


def test_jwk_extra_members_are_ignored(ed_w: Ed25519Wallet) -> None:
    jwk: dict[str, object] = {**ed_w.to_jwk(), "kid": "k1", "ext": True, "key_ops": ["sign"]}
    assert wallet_mod.from_jwk(jwk).owner == ed_w.owner


def _with(jwk: dict[str, str], **changes: object) -> dict[str, object]:
    out: dict[str, object] = dict(jwk)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _swap(jwk: dict[str, str], a: str, b: str) -> dict[str, object]:
    return _with(jwk, **{a: jwk[b], b: jwk[a]})


def _bump(value: str) -> str:
    n = int.from_bytes(unb64(value), "big") + 2
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


BAD_RSA_JWKS: list[tuple[str, Callable[[dict[str, str]], object], str]] = [
    ("not an object", lambda j: [j], "JSON object"),
    ("no kty", lambda j: _with(j, kty=None), "key type None"),
    ("kty EC", lambda j: _with(j, kty="EC"), "key type 'EC'"),
    ("no n", lambda j: _with(j, n=None), "no 'n'"),
    ("no d (public key only)", lambda j: _with(j, d=None), "no 'd'"),
    ("e = 3", lambda j: _with(j, e="Aw"), "65537"),
    ("n not a string", lambda j: _with(j, n=12345), "must be a string"),
    ("n not base64url", lambda j: _with(j, n="a+b/"), "not base64url"),
    ("n empty", lambda j: _with(j, n=""), "empty"),
    ("p without q", lambda j: _with(j, q=None), "no 'q'"),
    ("d altered", lambda j: _with(j, d=_bump(j["d"])), "consistent"),
    ("p and q from elsewhere", lambda j: _with(j, p=_bump(j["p"])), "consistent"),
    ("dp/dq swapped", lambda j: _swap(j, "dp", "dq"), "consistent"),
    ("qi altered", lambda j: _with(j, qi=_bump(j["qi"])), "consistent"),
    ("n of another size", lambda j: _with(j, n=j["n"][:-3]), "4096 bits"),
]


@pytest.mark.parametrize(
    ("mutate", "match"), [c[1:] for c in BAD_RSA_JWKS], ids=[c[0] for c in BAD_RSA_JWKS]
)
def test_bad_rsa_jwk_is_a_config_error(
    rsa_w: RSAWallet, mutate: Callable[[dict[str, str]], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        wallet_mod.from_jwk(mutate(rsa_w.to_jwk()))  # type: ignore[arg-type]


BAD_ED_JWKS: list[tuple[str, Callable[[dict[str, str]], object], str]] = [
    ("crv X25519", lambda j: _with(j, crv="X25519"), "curve"),
    ("no d", lambda j: _with(j, d=None), "no 'd'"),
    ("short d", lambda j: _with(j, d=j["d"][:-3]), "32 bytes"),
    ("x of another key", lambda j: _with(j, x=b64(RFC8032_PUBLIC)), "not the public key"),
]


@pytest.mark.parametrize(
    ("mutate", "match"), [c[1:] for c in BAD_ED_JWKS], ids=[c[0] for c in BAD_ED_JWKS]
)
def test_bad_ed25519_jwk_is_a_config_error(
    ed_w: Ed25519Wallet, mutate: Callable[[dict[str, str]], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        wallet_mod.from_jwk(mutate(ed_w.to_jwk()))  # type: ignore[arg-type]


def test_rsa_keys_other_than_4096_bits_e65537_are_refused() -> None:
    small = rsa.generate_private_key(65537, 2048)
    with pytest.raises(ConfigError, match="4096 bits"):
        RSAWallet(small)


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown wallet kind"):
        wallet_mod.generate("dsa")  # type: ignore[arg-type]


# -- files ----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_then_load(any_w: Wallet, tmp_path: Path) -> None:
    path = tmp_path / "wallet.json"
    wallet_mod.save(any_w, path)
    assert json.loads(path.read_text()) == any_w.to_jwk()
    assert wallet_mod.load(path).owner == any_w.owner
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path) == ["wallet.json"]  # no temporary file left behind


def test_save_is_0600_from_creation_whatever_the_umask(
    ed_w: Ed25519Wallet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wallet.json"
    path.write_text("old")
    path.chmod(0o644)
    modes_before_rename: list[int] = []
    real_replace = os.replace

    def spy(src: str, dst: object) -> None:
        modes_before_rename.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", spy)
    old_umask = os.umask(0)
    try:
        wallet_mod.save(ed_w, path)
    finally:
        os.umask(old_umask)
    assert modes_before_rename == [0o600]
    assert _mode(path) == 0o600
    assert wallet_mod.load(path).owner == ed_w.owner


def test_save_into_a_missing_directory_is_a_config_error(
    ed_w: Ed25519Wallet, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="cannot write wallet"):
        wallet_mod.save(ed_w, tmp_path / "missing" / "wallet.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read wallet"),
        ("{not json", "is not JSON"),
        ('{"kty": "RSA"}', "no 'n'"),
        ("[]", "JSON object"),
    ],
    ids=["missing", "not-json", "not-a-key", "not-an-object"],
)
def test_load_errors_are_config_errors(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "wallet.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        wallet_mod.load(path)
    assert str(path) in info.value.message


# -- ed25519 through libsodium agrees with OpenSSL (cryptography) ------------------

_L = 2**252 + 27742317777372353535851937790883648493  # the ed25519 group order


@settings(max_examples=50, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=200))
def test_ed25519_signatures_are_openssls_byte_for_byte(seed: bytes, message: bytes) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    wallet = Ed25519Wallet(key)
    signature = wallet.sign(message)
    assert signature == key.sign(message)  # deterministic: one right answer
    assert wallet_mod.verify(2, wallet.owner, message, signature)
    key.public_key().verify(signature, message)  # OpenSSL accepts it too


@settings(max_examples=50, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(min_size=1, max_size=100),
    flip=st.integers(min_value=0, max_value=8 * 64 - 1),
)
def test_ed25519_verify_refuses_what_openssl_refuses(
    seed: bytes, message: bytes, flip: int
) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    owner = key.public_key().public_bytes_raw()
    good = bytearray(key.sign(message))
    good[flip // 8] ^= 1 << (flip % 8)
    bad = bytes(good)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(bad, message)
    assert not wallet_mod.verify(2, owner, message, bad)
    assert not wallet_mod.verify(2, owner, message + b"!", key.sign(message))


def test_ed25519_non_canonical_s_is_refused(ed_w: Ed25519Wallet) -> None:
    """S + L verifies the same equation; a malleated signature must still be refused."""
    message = b"malleable?"
    signature = ed_w.sign(message)
    s = int.from_bytes(signature[32:], "little") + _L
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not wallet_mod.verify(2, ed_w.owner, message, malleated)
    assert wallet_mod.verify(2, ed_w.owner, message, signature)


def test_ed25519_small_order_key_is_refused() -> None:
    """The identity point as a public key (small order): any R = identity, S = 0
    'signature' satisfies the equation for it; no real wallet has this key."""
    identity = (1).to_bytes(32, "little")
    forged = identity + bytes(32)
    assert not wallet_mod.verify(2, identity, b"anything", forged)
