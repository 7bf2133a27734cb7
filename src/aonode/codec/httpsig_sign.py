"""Signing AO messages as HTTP requests, the way HyperBEAM and ``hbsig`` do.

The node verifies such requests (:mod:`aonode.codec.httpsig`); this side
exists so that the node's own tools and tests can produce them without a
JavaScript client: every key a header, the data as the body bound by
``content-digest``, every header covered in sorted order, ``@path`` when a
path is given, and one signature named ``http-sig-<hex of address bytes
1..8>`` (HyperBEAM's name for a signer).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from http_sfv.item import InnerList

from aonode.codec import httpsig_base as sig
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.wallet import RSAWallet, Wallet

__all__ = ["content_digest", "sign", "signature_name"]

_SHA512 = hashes.SHA512()
_PSS_SIGN = padding.PSS(mgf=padding.MGF1(_SHA512), salt_length=64)


def content_digest(body: bytes) -> str:
    """The ``content-digest`` header of ``body`` (RFC 9530, sha-256)."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def signature_name(address: str) -> str:
    return "http-sig-" + b64url_decode(address)[1:9].hex()


def sign(
    wallet: Wallet,
    keys: Mapping[str, str],
    *,
    body: bytes | None = None,
    path: str | None = None,
    created: int | None = None,
    expires: int | None = None,
) -> dict[str, str]:
    """The headers of a request carrying ``keys`` (and ``body``), signed by ``wallet``.

    RSA wallets sign ``rsa-pss-sha512`` (keyid = the modulus), ed25519 wallets
    ``ed25519`` (keyid = the public key).
    """
    headers = {k.lower(): v for k, v in keys.items()}
    if body is not None:
        headers["content-digest"] = content_digest(body)
        headers.setdefault("inline-body-key", "data")
    if path is not None:
        headers["path"] = path
    names = sorted("@path" if k == "path" else k for k in headers)
    inner = InnerList(list(names))
    alg = sig.RSA_PSS_SHA512 if isinstance(wallet, RSAWallet) else sig.ED25519
    inner.params["alg"] = alg
    inner.params["keyid"] = b64url_encode(wallet.owner)
    if created is not None:
        inner.params["created"] = created
    if expires is not None:
        inner.params["expires"] = expires
    entry = sig.SigEntry(
        name=signature_name(wallet.address),
        components=tuple(names),
        params=inner,
        alg=alg,
        keyid=b64url_encode(wallet.owner),
        signature=b"",
        created=created,
        expires=expires,
    )
    base = sig.signature_base(entry, headers, {}, hyperbeam=True)
    assert base is not None  # every component is one of ``headers``
    if isinstance(wallet, RSAWallet):
        signature = wallet.private_key.sign(base, _PSS_SIGN, _SHA512)
    else:
        signature = wallet.sign(base)
    headers["signature"] = f"{entry.name}=:{base64.b64encode(signature).decode()}:"
    headers["signature-input"] = f"{entry.name}={inner}"
    return headers
