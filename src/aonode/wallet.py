"""Arweave (RSA-4096, PSS) and ed25519 wallets: the node's signing identities.

A wallet is what signs every assignment the node commits, so two things
matter here besides correctness:

* The private key object is built once, when the wallet is made or loaded,
  and reused for every signature; parsing a 4096-bit key costs more than
  signing with it.
* ``sign`` takes no Python-level lock: ``cryptography`` releases the GIL while
  it computes the RSA signature, so several threads can sign at once.

Signature types are the ANS-104 ones: 1 is Arweave RSA-4096 with PSS/SHA-256,
2 is ed25519.  The owner of an RSA wallet is its 512-byte big-endian modulus
(the public exponent is always 65537 and is not transmitted), the owner of an
ed25519 wallet is its 32-byte raw public key, and an address is
``b64url(sha256(owner))`` for both.

RSA-PSS salt length: real Arweave signers disagree.  arweave-js and arbundles
on Node sign with OpenSSL's default, the maximum salt (478 bytes for a 4096-bit
key); arweave-js in browsers, the Arweave node and HyperBEAM sign with a
32-byte salt (the digest length).  Every verifier among them recovers the salt
length from the signature (arweave-js in browsers tries 0, 32 and the
maximum), so :func:`verify` auto-detects it and :meth:`RSAWallet.sign` uses
32 bytes, the length every one of those verifiers accepts.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from nacl import bindings as sodium
from nacl.exceptions import BadSignatureError

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import ConfigError

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "RSA_PSS_SALT_LENGTH",
    "RSA_PUBLIC_EXPONENT",
    "RSA_SIGNATURE_TYPE",
    "Ed25519Wallet",
    "RSAWallet",
    "Wallet",
    "address_of",
    "from_jwk",
    "generate",
    "load",
    "save",
    "verify",
]

RSA_SIGNATURE_TYPE = 1
ED25519_SIGNATURE_TYPE = 2
RSA_PUBLIC_EXPONENT = 65537
RSA_MODULUS_BITS = 4096
RSA_OWNER_LENGTH = RSA_MODULUS_BITS // 8
RSA_SIGNATURE_LENGTH = RSA_OWNER_LENGTH
ED25519_OWNER_LENGTH = 32
ED25519_SIGNATURE_LENGTH = 64
RSA_PSS_SALT_LENGTH = 32
"""Salt length used when signing (see the module docstring for why 32)."""

# Immutable, so one instance serves every thread.
_SHA256 = hashes.SHA256()
_SIGN_PADDING = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=RSA_PSS_SALT_LENGTH)
_VERIFY_PADDING = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=padding.PSS.AUTO)


@functools.lru_cache(maxsize=4096)  # one per message signer (quotas, aos ``Owner``): few
def address_of(owner: bytes) -> str:
    """The Arweave/AO address of an ANS-104 owner field."""
    return b64url_encode(hashlib.sha256(owner).digest())


@dataclass(frozen=True, slots=True)
class RSAWallet:
    """An Arweave RSA-4096 wallet (ANS-104 signature type 1)."""

    signature_type: ClassVar[int] = RSA_SIGNATURE_TYPE

    private_key: rsa.RSAPrivateKey = field(repr=False, compare=False)
    owner: bytes = field(init=False, repr=False)
    address: str = field(init=False)

    def __post_init__(self) -> None:
        public = self.private_key.public_key().public_numbers()
        if public.e != RSA_PUBLIC_EXPONENT:
            # The owner field carries only n: any other exponent makes
            # signatures nobody can verify.
            raise ConfigError(f"RSA public exponent must be 65537, not {public.e}")
        if public.n.bit_length() != RSA_MODULUS_BITS:
            raise ConfigError(
                f"RSA modulus must be {RSA_MODULUS_BITS} bits, not {public.n.bit_length()}"
            )
        owner = public.n.to_bytes(RSA_OWNER_LENGTH, "big")
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "address", address_of(owner))

    def sign(self, message: bytes) -> bytes:
        """RSA-PSS/SHA-256 over ``message``: 512 bytes that any Arweave verifier accepts."""
        return self.private_key.sign(message, _SIGN_PADDING, _SHA256)

    def to_jwk(self) -> dict[str, str]:
        """The standard Arweave key file: a private RSA JWK with CRT parameters."""
        priv = self.private_key.private_numbers()
        pub = priv.public_numbers
        return {
            "kty": "RSA",
            "n": _uint_b64(pub.n),
            "e": _uint_b64(pub.e),
            "d": _uint_b64(priv.d),
            "p": _uint_b64(priv.p),
            "q": _uint_b64(priv.q),
            "dp": _uint_b64(priv.dmp1),
            "dq": _uint_b64(priv.dmq1),
            "qi": _uint_b64(priv.iqmp),
        }


@dataclass(frozen=True, slots=True)
class Ed25519Wallet:
    """An ed25519 wallet (ANS-104 signature type 2)."""

    signature_type: ClassVar[int] = ED25519_SIGNATURE_TYPE

    private_key: ed25519.Ed25519PrivateKey = field(repr=False, compare=False)
    owner: bytes = field(init=False, repr=False)
    address: str = field(init=False)

    # libsodium's 64-byte secret key (seed ‖ public key): signing goes through
    # libsodium (PyNaCl), ~1.5× faster than OpenSSL's ed25519 here; the same
    # deterministic signature (tests/test_wallet.py checks both agree).
    _sodium_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = self.private_key.public_key().public_bytes_raw()
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "address", address_of(owner))
        _, secret = sodium.crypto_sign_seed_keypair(self.private_key.private_bytes_raw())
        object.__setattr__(self, "_sodium_key", secret)

    def sign(self, message: bytes) -> bytes:
        """Plain (pure) ed25519 over ``message``: 64 bytes."""
        return sodium.crypto_sign(message, self._sodium_key)[:ED25519_SIGNATURE_LENGTH]

    def to_jwk(self) -> dict[str, str]:
        """An OKP JWK (RFC 8037), the form Node's ``crypto`` exports ed25519 keys in."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url_encode(self.owner),
            "d": b64url_encode(self.private_key.private_bytes_raw()),
        }


Wallet: TypeAlias = RSAWallet | Ed25519Wallet


def generate(kind: Literal["rsa", "ed25519"] = "rsa") -> Wallet:
    """A fresh wallet; RSA keys are 4096 bits with e = 65537, as Arweave requires."""
    if kind == "rsa":
        return RSAWallet(rsa.generate_private_key(RSA_PUBLIC_EXPONENT, RSA_MODULUS_BITS))
    if kind == "ed25519":
        return Ed25519Wallet(ed25519.Ed25519PrivateKey.generate())
    raise ConfigError(f"unknown wallet kind {kind!r} (expected 'rsa' or 'ed25519')")


def from_jwk(obj: Mapping[str, object]) -> Wallet:
    """Build a wallet from a private JWK; raise ``ConfigError`` if it is not a usable key.

    RSA keys may omit the CRT parameters (``p``, ``q``, ``dp``, ``dq``, ``qi``):
    they are recomputed from ``n``, ``e`` and ``d``.  Unknown members (``kid``,
    ``alg``, ``ext``...) are ignored, as JWK requires.
    """
    if not isinstance(obj, Mapping):
        raise ConfigError(f"a JWK must be a JSON object, not {type(obj).__name__}")
    kty = obj.get("kty")
    if kty == "RSA":
        return _rsa_from_jwk(obj)
    if kty == "OKP":
        crv = obj.get("crv")
        if crv != "Ed25519":
            raise ConfigError(f"unsupported OKP curve {crv!r} (only Ed25519)")
        return _ed25519_from_jwk(obj)
    raise ConfigError(f"unsupported JWK key type {kty!r} (expected 'RSA' or 'OKP')")


def load(path: Path) -> Wallet:
    """Read a JWK wallet file (Arweave's own format)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read wallet {path}: {exc}") from exc
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"wallet {path} is not JSON: {exc}") from exc
    try:
        return from_jwk(obj)
    except ConfigError as exc:
        raise ConfigError(f"wallet {path}: {exc.message}") from exc


def save(wallet: Wallet, path: Path) -> None:
    """Write the wallet as a JWK file, atomically and readable by its owner only.

    The key is written to a temporary file created with mode 0600 (so it is
    never readable by others, not even for a moment), fsynced, then renamed
    over ``path``: a crash leaves either the old file or the new one.
    """
    path = Path(path)
    payload = json.dumps(wallet.to_jwk()).encode("utf-8")
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write wallet {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise ConfigError(f"cannot write wallet {path}: {exc}") from exc
    _fsync_directory(directory)


def verify(signature_type: int, owner: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``owner``'s signature of ``message``.

    Never raises on bad input (unknown type, wrong lengths, an owner that is
    no valid key): it answers ``False``.  RSA signatures with any PSS salt
    length verify, since real Arweave signers use different ones.
    """
    try:
        if signature_type == RSA_SIGNATURE_TYPE:
            if len(owner) != RSA_OWNER_LENGTH or len(signature) != RSA_SIGNATURE_LENGTH:
                return False
            rsa_key = _rsa_public_key(bytes(owner))
            if rsa_key is None:
                return False
            rsa_key.verify(signature, message, _VERIFY_PADDING, _SHA256)
            return True
        if signature_type == ED25519_SIGNATURE_TYPE:
            if len(owner) != ED25519_OWNER_LENGTH or len(signature) != ED25519_SIGNATURE_LENGTH:
                return False
            # libsodium (PyNaCl): ~2× faster than OpenSSL's ed25519 verify, and
            # stricter (it also refuses small-order keys and R values, which no
            # real wallet makes); it releases the GIL, so verifier threads overlap
            sodium.crypto_sign_open(bytes(signature) + bytes(message), bytes(owner))
            return True
    except (InvalidSignature, BadSignatureError, ValueError, TypeError, OverflowError):
        return False
    return False


def _rsa_public_key(owner: bytes) -> rsa.RSAPublicKey | None:
    try:
        n = int.from_bytes(owner, "big")
        return rsa.RSAPublicNumbers(RSA_PUBLIC_EXPONENT, n).public_key()
    except ValueError:
        return None


def _rsa_from_jwk(obj: Mapping[str, object]) -> RSAWallet:
    n = _jwk_uint(obj, "n")
    e = _jwk_uint(obj, "e")
    d = _jwk_uint(obj, "d")
    if e != RSA_PUBLIC_EXPONENT:
        raise ConfigError(f"RSA JWK public exponent must be 65537 ('AQAB'), not {e}")
    if n.bit_length() != RSA_MODULUS_BITS:
        raise ConfigError(f"RSA JWK modulus must be {RSA_MODULUS_BITS} bits, not {n.bit_length()}")
    try:
        if "p" in obj or "q" in obj:
            p, q = _jwk_uint(obj, "p"), _jwk_uint(obj, "q")
        else:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        dp = _jwk_uint(obj, "dp") if "dp" in obj else rsa.rsa_crt_dmp1(d, p)
        dq = _jwk_uint(obj, "dq") if "dq" in obj else rsa.rsa_crt_dmq1(d, q)
        qi = _jwk_uint(obj, "qi") if "qi" in obj else rsa.rsa_crt_iqmp(p, q)
        _check_rsa_numbers(n, e, d, p, q, dp, dq, qi)
        numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n))
        # OpenSSL's own check tests p and q for primality (~0.2 s for 4096
        # bits); the arithmetic above plus the signing round trip below
        # catch damaged or mismatched key files at a hundredth of the cost.
        key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    except (ValueError, ArithmeticError) as exc:
        raise ConfigError(f"RSA JWK is not a consistent private key: {exc}") from exc
    wallet = RSAWallet(key)
    probe = b"aonode wallet self-test"
    if not verify(RSA_SIGNATURE_TYPE, wallet.owner, probe, wallet.sign(probe)):
        raise ConfigError("RSA JWK private key does not match its modulus")
    return wallet


def _check_rsa_numbers(n: int, e: int, d: int, p: int, q: int, dp: int, dq: int, qi: int) -> None:
    if p * q != n:
        raise ValueError("p * q != n")
    if not (1 < d < n) or (e * d) % math.lcm(p - 1, q - 1) != 1:
        raise ValueError("d is not the inverse of e")
    if dp != d % (p - 1) or dq != d % (q - 1) or (qi * q) % p != 1:
        raise ValueError("CRT parameters dp, dq, qi do not match p, q, d")


def _ed25519_from_jwk(obj: Mapping[str, object]) -> Ed25519Wallet:
    d = _jwk_bytes(obj, "d")
    if len(d) != 32:
        raise ConfigError(f"Ed25519 JWK 'd' must be 32 bytes, not {len(d)}")
    wallet = Ed25519Wallet(ed25519.Ed25519PrivateKey.from_private_bytes(d))
    if "x" in obj and _jwk_bytes(obj, "x") != wallet.owner:
        raise ConfigError("Ed25519 JWK 'x' is not the public key of 'd'")
    return wallet


def _jwk_bytes(obj: Mapping[str, object], name: str) -> bytes:
    if name not in obj:
        raise ConfigError(f"JWK has no {name!r} member")
    value = obj[name]
    if not isinstance(value, str):
        raise ConfigError(f"JWK member {name!r} must be a string, not {type(value).__name__}")
    try:
        raw = b64url_decode(value)
    except ValueError as exc:
        raise ConfigError(f"JWK member {name!r} is not base64url: {exc}") from exc
    if not raw:
        raise ConfigError(f"JWK member {name!r} is empty")
    return raw


def _jwk_uint(obj: Mapping[str, object], name: str) -> int:
    return int.from_bytes(_jwk_bytes(obj, name), "big")


def _uint_b64(value: int) -> str:
    # JWK's Base64urlUInt: big-endian, minimal length (RFC 7518 §2).
    return b64url_encode(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse O_RDONLY
    # directory fsync, which only weakens durability, never correctness.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
